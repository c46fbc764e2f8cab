package fs

import (
	"fmt"
	"strings"
	"testing"
)

// escapeMount is the kernel's escaping of mountinfo paths: space, tab, newline and
// backslash as three-digit octal.
func escapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ' ', '\t', '\n', '\\':
			fmt.Fprintf(&b, `\%03o`, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func TestParseMountinfo(t *testing.T) {
	info := `22 1 0:21 / /proc rw,nosuid - proc proc rw
98 22 0:50 / /mnt/a\040b rw,nosuid shared:1 - fuse.chronicle chronicle rw,user_id=0
99 98 0:51 / /mnt/a\040b rw - fuse.other x rw
`
	for dir, want := range map[string]string{"/mnt/a b": "fuse.other", "/proc": "proc", "/mnt": ""} {
		found, fstype, err := parseMountinfo(strings.NewReader(info), dir)
		if err != nil || found != (want != "") || fstype != want {
			t.Errorf("%q: found %v type %q err %v, want %q", dir, found, fstype, err, want)
		}
	}
}

// FuzzMountinfo: any mountinfo text parses without panicking, and a mount line for any
// directory name, escaped as the kernel does, is found with its type.
func FuzzMountinfo(f *testing.F) {
	f.Add("/mnt/chronicle", "22 1 0:21 / /proc rw - proc proc rw\n")
	f.Add("/a b\\c", "garbage \\0\\01 - -\n\n - x")
	f.Fuzz(func(t *testing.T, dir, noise string) {
		parseMountinfo(strings.NewReader(noise), dir) // must not panic
		if dir == "" || strings.ContainsAny(dir, "\x00") {
			return
		}
		line := fmt.Sprintf("98 22 0:50 / %s rw shared:1 - fuse.chronicle chronicle rw\n", escapeMount(dir))
		found, fstype, err := parseMountinfo(strings.NewReader(strings.ReplaceAll(noise, "\n", " ")+"\n"+line), dir)
		if err == nil && (!found || fstype != "fuse.chronicle") {
			t.Fatalf("mount on %q not found (type %q) in\n%s", dir, fstype, line)
		}
	})
}
