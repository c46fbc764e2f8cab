package fs

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// Wait serves until ctx ends (SIGTERM) or the mount ends from outside, then unmounts,
// letting a busy mount detach lazily and serve its open files up to grace. A mount ended
// from outside, and one still busy past grace, are logged rather than returned: the
// daemon's work is over either way.
func (m *Mount) Wait(ctx context.Context, grace time.Duration, log *slog.Logger) error {
	select {
	case <-ctx.Done():
	case <-m.Done():
		log.Warn("mount ended from outside (unmounted or aborted)", "mountpoint", m.Dir())
		return nil
	}
	err := m.Unmount(grace)
	if errors.Is(err, ErrUnmountTimeout) {
		log.Warn("exiting with files still open on the detached mount; they will see ENOTCONN", "err", err)
		return nil
	}
	return err
}
