package fs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// FSType is the file system type shown in /proc/mounts ("fuse.chronicle").
const FSType = "chronicle"

// Mount is a live mount of an FS.
type Mount struct {
	fs     *FS
	dir    string
	server *fuse.Server
	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   chan struct{} // closed when the kernel ends the session
	once   sync.Once
	uerr   error
	helper *os.File // the helper's connection (MountSocket): closing it detaches the mount
}

// Mount mounts the file system on dir (which must exist) and starts serving. Clean a stale
// mount first with CleanStale.
func (f *FS) Mount(dir string) (*Mount, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", dir, err)
	}
	neg := f.cfg.NegativeTimeout
	// A process with CAP_SYS_ADMIN (root, or a service user given it as an ambient
	// capability) mounts with mount(2) itself (read-only); any other user through the setuid
	// fusermount3 helper, which needs "ro" spelled out and mounts nosuid,nodev anyway, or
	// through a helper socket (MountSocket). Passthrough needs CAP_SYS_ADMIN in this process.
	privileged := hasCapSysAdmin()
	mopts := []string{"default_permissions"} // the kernel checks 0444/0555 itself
	if !privileged {
		mopts = append(mopts, "ro")
		if f.cfg.Passthrough {
			f.log.Info("no CAP_SYS_ADMIN: mounting through a helper, without passthrough (it needs CAP_SYS_ADMIN)")
			f.cfg.Passthrough = false
		}
	}
	mountPoint := dir
	var helper *os.File
	if f.cfg.MountSocket != "" {
		fd, conn, err := helperMount(f.cfg.MountSocket)
		if err != nil {
			return nil, fmt.Errorf("mount %s through %s: %w", dir, f.cfg.MountSocket, err)
		}
		// go-fuse serves a descriptor mounted by someone else when named /dev/fd/N.
		mountPoint, helper, privileged = fmt.Sprintf("/dev/fd/%d", fd), conn, false
	}
	opts := &gofs.Options{
		MountOptions: fuse.MountOptions{
			AllowOther:           f.cfg.AllowOther,
			Options:              mopts,
			MaxBackground:        f.cfg.MaxBackground,
			MaxWrite:             f.cfg.MaxWrite,
			MaxReadAhead:         f.cfg.MaxWrite,
			FsName:               FSType,
			Name:                 FSType,
			DirectMountStrict:    privileged,
			DirectMountFlags:     unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV,
			IgnoreSecurityLabels: true,
			// book.npy of hot and warm books is spliced from the tier file (npyView);
			// every other reply is a vector, which go-fuse writes without trying a pipe.
			DisableSplice:      false,
			DisableReadDirPlus: !f.cfg.ReaddirPlus,
			Debug:              f.cfg.Debug,
			Logger:             slog.NewLogLogger(f.log.Handler(), slog.LevelDebug),
		},
		NegativeTimeout: &neg,
		UID:             f.uid,
		GID:             f.gid,
		RootStableAttr:  &gofs.StableAttr{Ino: rootIno},
		Logger:          log.New(&slogWriter{f.log}, "", 0),
	}
	root := &dirNode{fs: f, level: levelRoot}
	server, err := gofs.Mount(mountPoint, root, opts)
	if err != nil {
		if helper != nil {
			helper.Close()
		}
		return nil, fmt.Errorf("mount %s: %w", dir, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Mount{fs: f, dir: dir, server: server, cancel: cancel, done: make(chan struct{}), helper: helper}
	go func() {
		server.Wait()
		close(m.done)
	}()
	if f.cfg.ReadAheadKB > 0 && helper == nil { // through a helper, dir is not the mount here
		if err := setReadAhead(dir, f.cfg.ReadAheadKB); err != nil {
			f.log.Warn("could not raise readahead; the kernel keeps 128 KiB", "err", err)
		}
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		f.watch(ctx)
	}()
	pt := m.PassthroughOffered()
	f.log.Info("mounted", "dir", dir, "passthrough_offered", pt, "passthrough_enabled", f.cfg.Passthrough && pt,
		"max_write", f.cfg.MaxWrite, "max_background", f.cfg.MaxBackground, "read_ahead_kb", f.cfg.ReadAheadKB,
		"allow_other", f.cfg.AllowOther)
	return m, nil
}

// Dir is the absolute mount point.
func (m *Mount) Dir() string { return m.dir }

// PassthroughOffered reports whether the kernel offered FUSE passthrough at INIT. go-fuse
// still turns it off for the whole mount if one backing file registration fails (then
// every file is served by the daemon and Stats().PassthroughFallbackReads grows).
func (m *Mount) PassthroughOffered() bool {
	return m.server.KernelSettings().Flags64()&fuse.CAP_PASSTHROUGH != 0
}

// Done is closed when the kernel ends the session (unmounted by anyone, or aborted).
func (m *Mount) Done() <-chan struct{} { return m.done }

// Unmount unmounts; when the mount is busy it detaches it lazily (new path lookups fail at
// once, open files keep working) and keeps serving until the last user is gone or grace
// has passed. It returns ErrUnmountTimeout if users remained.
func (m *Mount) Unmount(grace time.Duration) error {
	m.once.Do(func() {
		m.cancel()
		m.wg.Wait()
		m.uerr = m.unmount(grace)
		m.fs.views.closeAll()
	})
	return m.uerr
}

func (m *Mount) unmount(grace time.Duration) error {
	log := m.fs.log
	select {
	case <-m.done:
		return nil // already unmounted from outside
	default:
	}
	if m.helper != nil {
		// Closing the connection ends the helper, which detaches the mount lazily
		// (deploy/chronicle-fs-mount@.service); open files keep working until they close.
		log.Info("asking the mount helper to detach the mount", "dir", m.dir, "grace", grace)
		m.helper.Close()
		return m.waitDone(grace)
	}
	err := umount(m.dir, 0)
	switch {
	case err == nil:
	case errors.Is(err, unix.EBUSY):
		log.Info("mount busy: detaching lazily; open files keep working", "dir", m.dir, "grace", grace)
		if err := umount(m.dir, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("unmount %s lazily: %w", m.dir, err)
		}
	case errors.Is(err, unix.EINVAL):
		// Not mounted any more (someone unmounted it): the session ends by itself.
	default:
		return fmt.Errorf("unmount %s: %w", m.dir, err)
	}
	return m.waitDone(grace)
}

func (m *Mount) waitDone(grace time.Duration) error {
	select {
	case <-m.done:
		m.fs.log.Info("unmounted", "dir", m.dir)
		return nil
	case <-time.After(grace):
		return fmt.Errorf("%s: %w (%v)", m.dir, ErrUnmountTimeout, grace)
	}
}

// hasCapSysAdmin reports whether this process may mount(2) and register passthrough
// backing files: CAP_SYS_ADMIN in its effective set.
func hasCapSysAdmin() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return os.Geteuid() == 0
	}
	return data[0].Effective&(1<<unix.CAP_SYS_ADMIN) != 0
}

// helperMount connects to a mount helper's socket and receives the /dev/fuse descriptor
// it mounted (one byte carrying SCM_RIGHTS, as fusermount3 sends it to $_FUSE_COMMFD).
// The connection stays open: the helper detaches the mount when it closes.
func helperMount(socket string) (int, *os.File, error) {
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		return -1, nil, err
	}
	f, err := conn.File() // a blocking descriptor of its own; conn is no longer needed
	conn.Close()
	if err != nil {
		return -1, nil, err
	}
	buf, oob := make([]byte, 1), make([]byte, unix.CmsgSpace(4))
	for {
		n, oobn, _, _, err := unix.Recvmsg(int(f.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			f.Close()
			return -1, nil, fmt.Errorf("receive the descriptor: %w", err)
		}
		if n == 0 && oobn == 0 {
			f.Close()
			return -1, nil, fmt.Errorf("the helper closed the connection without a descriptor (see its log: mount refused?)")
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) != 1 {
			f.Close()
			return -1, nil, fmt.Errorf("no descriptor in the helper's reply")
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 1 {
			f.Close()
			return -1, nil, fmt.Errorf("want one descriptor from the helper, got %d (%v)", len(fds), err)
		}
		return fds[0], f, nil
	}
}

// setReadAhead writes read_ahead_kb of the mount's backing device info: FUSE mounts start
// at 128 KiB whatever max_readahead says.
func setReadAhead(dir string, kb int) error {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return fmt.Errorf("stat %s: %w", dir, err)
	}
	p := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	if err := os.WriteFile(p, []byte(strconv.Itoa(kb)), 0); err != nil {
		return fmt.Errorf("set %s: %w", p, err)
	}
	return nil
}

// ReadAheadKB returns the mount's current bdi read_ahead_kb.
func ReadAheadKB(dir string) (int, error) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return 0, fmt.Errorf("stat %s: %w", dir, err)
	}
	b, err := os.ReadFile(fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev)))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// CheckMountPoint checks, without changing anything, that dir can be mounted on: an
// existing directory, or a missing one when mkdir is set (a typo in a mount point must not
// become a new tree). A live mount on it is ErrMounted; a stale one passes (CleanStale
// detaches it).
func CheckMountPoint(dir string, mkdir bool) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	mounted, fstype, err := mountedAt(dir)
	if err != nil {
		return err
	}
	if mounted {
		var sfs unix.Statfs_t
		if err := unix.Statfs(dir, &sfs); err == nil {
			return fmt.Errorf("mount point %s (%s): %w", dir, fstype, ErrMounted)
		}
		return nil
	}
	var st unix.Stat_t
	switch err := unix.Stat(dir, &st); {
	case err == nil:
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return fmt.Errorf("mount point %s: %w", dir, unix.ENOTDIR)
		}
		return nil
	case errors.Is(err, unix.ENOENT):
		if mkdir {
			return nil
		}
		return fmt.Errorf("%s: %w", dir, ErrNoMountPoint)
	default:
		return fmt.Errorf("stat mount point %s: %w", dir, err)
	}
}

// CleanStale prepares dir for mounting. A mount left by a crashed daemon answers
// "transport endpoint is not connected"; it is detached. A live mount is left alone and
// reported as ErrMounted. A missing dir is ErrNoMountPoint, or created with its parents
// when mkdir is set.
func CleanStale(dir string, mkdir bool, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	mounted, fstype, err := mountedAt(dir)
	if err != nil {
		return err
	}
	if mounted {
		// statfs always reaches the daemon (stat may be answered from cached attributes).
		var sfs unix.Statfs_t
		err := unix.Statfs(dir, &sfs)
		switch {
		case err == nil:
			return fmt.Errorf("mount point %s (%s): %w", dir, fstype, ErrMounted)
		case errors.Is(err, unix.ENOTCONN), errors.Is(err, unix.ECONNABORTED):
			log.Warn("stale mount from a crashed daemon: detaching it", "dir", dir, "type", fstype, "err", err)
			if err := umount(dir, unix.MNT_DETACH); err != nil {
				return fmt.Errorf("detach stale mount %s: %w", dir, err)
			}
		default:
			return fmt.Errorf("statfs mount point %s: %w", dir, err)
		}
	}
	var st unix.Stat_t
	err = unix.Stat(dir, &st)
	switch {
	case err == nil:
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return fmt.Errorf("mount point %s: %w", dir, unix.ENOTDIR)
		}
		return nil
	case errors.Is(err, unix.ENOENT):
		if !mkdir {
			return fmt.Errorf("%s: %w", dir, ErrNoMountPoint)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create mount point: %w", err)
		}
		return nil
	}
	return fmt.Errorf("stat mount point %s: %w", dir, err)
}

// mountedAt reports whether dir is itself a mount point, from /proc/self/mountinfo.
func mountedAt(dir string) (bool, string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, "", err
	}
	defer f.Close()
	return parseMountinfo(f, dir)
}

// parseMountinfo reads mountinfo lines (proc(5)) and reports whether dir is a mount point
// and, if so, the file system type of the last mount on it (the visible one).
func parseMountinfo(r io.Reader, dir string) (bool, string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	found, fstype := false, ""
	for sc.Scan() {
		fields := strings.Split(sc.Text(), " ") // only these separate fields: a path may hold other white space
		if len(fields) < 5 || unescapeMount(fields[4]) != dir {
			continue
		}
		found = true // the last one listed is the visible one
		for i, fl := range fields {
			if fl == "-" && i+1 < len(fields) {
				fstype = fields[i+1]
			}
		}
	}
	return found, fstype, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for space, ...).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// LazyUnmount unmounts dir, detaching lazily if it is busy (chronicle-fs unmount). A
// directory that is not a mount point is ErrNotMounted.
func LazyUnmount(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	mounted, _, err := mountedAt(abs)
	if err != nil {
		return err
	}
	if !mounted {
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("unmount %s: %w", dir, err)
		}
		return fmt.Errorf("unmount %s: %w", dir, ErrNotMounted)
	}
	err = umount(abs, 0)
	if errors.Is(err, unix.EBUSY) {
		err = umount(dir, unix.MNT_DETACH)
	}
	if err != nil {
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	return nil
}

// umount unmounts dir (flags: 0 or MNT_DETACH). A user without CAP_SYS_ADMIN cannot
// umount(2); the setuid fusermount3 helper unmounts what that user mounted (EBUSY stays
// EBUSY, so the caller can detach).
func umount(dir string, flags int) error {
	err := unix.Unmount(dir, flags)
	if !errors.Is(err, unix.EPERM) {
		return err
	}
	bin, lerr := exec.LookPath("fusermount3")
	if lerr != nil {
		if bin, lerr = exec.LookPath("fusermount"); lerr != nil {
			return err
		}
	}
	args := []string{"-u", "-q"}
	if flags&unix.MNT_DETACH != 0 {
		args = append(args, "-z")
	}
	out, ferr := exec.Command(bin, append(args, dir)...).CombinedOutput()
	switch {
	case ferr == nil:
		return nil
	case strings.Contains(string(out), "busy"):
		return unix.EBUSY
	case strings.Contains(string(out), "not mounted") || strings.Contains(string(out), "not found in"):
		return unix.EINVAL
	}
	return fmt.Errorf("%s -u %s: %v: %s", bin, dir, ferr, strings.TrimSpace(string(out)))
}

// slogWriter turns go-fuse's log.Logger diagnostics into warnings.
type slogWriter struct{ l *slog.Logger }

func (w *slogWriter) Write(p []byte) (int, error) {
	w.l.Warn("go-fuse", "msg", strings.TrimSpace(string(p)))
	return len(p), nil
}
