package testkit

import "golang.org/x/sys/unix"

// ServedTier is the tier chronicle-fs serves the file at path from: its
// user.chronicle.tier attribute, read through the mount.
func ServedTier(path string) (string, error) {
	buf := make([]byte, 64)
	n, err := unix.Getxattr(path, "user.chronicle.tier", buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}
