package bytesize

import "testing"

func TestParse(t *testing.T) {
	for in, want := range map[string]int64{"268435456": 256 << 20, "256MiB": 256 << 20, "1GiB": 1 << 30, "64M": 64 << 20, " 2 KiB": 2048} {
		if got, err := Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1.5GiB", "lots", "99999999999T"} {
		if _, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) accepted", in)
		}
	}
}

func TestFormat(t *testing.T) {
	for n, want := range map[int64]string{-1: "unknown", 0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 3 << 29: "1.5 GiB", 1 << 40: "1.0 TiB"} {
		if got := Format(n); got != want {
			t.Errorf("Format(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestSize(t *testing.T) {
	for n, want := range map[Size]string{0: "0", 1 << 30: "1GiB", 256 << 20: "256MiB", 1536: "1536", 1000: "1000", 3 << 40: "3TiB"} {
		if got := n.String(); got != want {
			t.Errorf("Size(%d) = %q, want %q", int64(n), got, want)
		}
		var back Size
		if err := back.UnmarshalText([]byte(want)); err != nil || back != n {
			t.Errorf("UnmarshalText(%q) = %d, %v", want, back, err)
		}
	}
	var s Size
	if err := s.Set("1.5GiB"); err == nil {
		t.Error("1.5GiB accepted")
	}
	if s.Type() != "size" {
		t.Error(s.Type())
	}
}
