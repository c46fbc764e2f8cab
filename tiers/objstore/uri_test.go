package objstore_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chronicle/chronicle/tiers/objstore"
)

func TestParseURI(t *testing.T) {
	for _, c := range []struct {
		in   string
		want objstore.Location
		str  string
	}{
		{"s3://bucket", objstore.Location{Scheme: "s3", Bucket: "bucket"}, "s3://bucket"},
		{"s3://bucket/", objstore.Location{Scheme: "s3", Bucket: "bucket"}, "s3://bucket"},
		{"s3://my.bucket-1/a/b/", objstore.Location{Scheme: "s3", Bucket: "my.bucket-1", Prefix: "a/b"}, "s3://my.bucket-1/a/b"},
		{"file:///data/remote", objstore.Location{Scheme: "file", Dir: "/data/remote"}, "file:///data/remote"},
		{"file:///data/remote/", objstore.Location{Scheme: "file", Dir: "/data/remote"}, "file:///data/remote"},
		{"file:///", objstore.Location{Scheme: "file", Dir: "/"}, "file:///"},
	} {
		got, err := objstore.ParseURI(c.in)
		if err != nil || got != c.want || got.String() != c.str {
			t.Errorf("ParseURI(%q) = %+v (%q), %v; want %+v (%q)", c.in, got, got.String(), err, c.want, c.str)
		}
	}
	for _, bad := range []string{
		"", "s3://", "s3:///x", "s3://ab", "s3://UPPER", "s3://-bucket", "s3://bucket-", "s3://a..b/x",
		"s3://user@bucket/x", "s3://bucket:9000/x", "s3://bucket//x", "s3://bucket/a/../b", "s3://bucket/./x",
		"s3://bucket/a%2Fb", "s3://bucket/a?b", "s3://bucket/a#b", "S3://bucket", "s3:/bucket", "s3:bucket",
		"file://", "file://host/x", "file://localhost/x", "file:relative", "file:///a/../b", "file:///a//b",
		"file:///a/./b", "file:///a\\b", "file:///a\x00b", "http://bucket/x", "bucket/x", "/abs/dir",
		"file:///a/.objstore-tmp-1", "s3://bucket/" + strings.Repeat("p", objstore.MaxKeyLen),
	} {
		if got, err := objstore.ParseURI(bad); !errors.Is(err, objstore.ErrInvalidURI) {
			t.Errorf("ParseURI(%q) = %+v, %v; want ErrInvalidURI", bad, got, err)
		}
	}
}

func TestKeyOf(t *testing.T) {
	s3root, _ := objstore.ParseURI("s3://bucket/pre/fix")
	fileroot, _ := objstore.ParseURI("file:///srv/remote")
	bucketroot, _ := objstore.ParseURI("s3://bucket")
	slashroot, _ := objstore.ParseURI("file:///")
	ok := []struct {
		root objstore.Location
		uri  string
		key  string
	}{
		{s3root, "s3://bucket/pre/fix/v1/a/book.q.zst", "v1/a/book.q.zst"},
		{fileroot, "file:///srv/remote/v1/a/book.q.zst", "v1/a/book.q.zst"},
		{bucketroot, "s3://bucket/k", "k"},
		{slashroot, "file:///etc-ish/k", "etc-ish/k"},
	}
	for _, c := range ok {
		got, err := c.root.KeyOf(c.uri)
		if err != nil || got != c.key || c.root.URI(got) != c.uri {
			t.Errorf("%s KeyOf(%q) = %q, %v; want %q", c.root, c.uri, got, err, c.key)
		}
	}
	for _, c := range []struct {
		root objstore.Location
		uri  string
	}{
		{s3root, "s3://bucket/pre/fix"},
		{s3root, "s3://bucket/pre/fix/"},
		{s3root, "s3://bucket/pre/fixture/k"},
		{s3root, "s3://bucket/pre/k"},
		{s3root, "s3://other/pre/fix/k"},
		{s3root, "s3://bucket/pre/fix/../../k"},
		{s3root, "s3://bucket/pre/fix/a/../../fix2/k"},
		{s3root, "s3://bucket/pre/fix/%2e%2e/k"},
		{s3root, "file:///pre/fix/k"},
		{s3root, "s3://bucket/pre/fix//k"},
		{fileroot, "file:///srv/remote/../etc/passwd"},
		{fileroot, "file:///srv/remote2/k"},
		{fileroot, "file:///srv/k"},
		{fileroot, "file://host/srv/remote/k"},
		{fileroot, "s3://srv/remote/k"},
		{fileroot, "file:///srv/remote/a/./b"},
		{bucketroot, "s3://bucket2/k"},
		{bucketroot, "s3://bucket"},
		{slashroot, "file:///../etc"},
		{slashroot, "file://k"},
	} {
		if k, err := c.root.KeyOf(c.uri); !errors.Is(err, objstore.ErrOutsideRoot) {
			t.Errorf("%s KeyOf(%q) = %q, %v; want ErrOutsideRoot", c.root, c.uri, k, err)
		}
	}
}

// FuzzParseURI: parsing never panics, and an accepted root round-trips
// through its canonical form.
func FuzzParseURI(f *testing.F) {
	for _, s := range []string{
		"s3://bucket", "s3://bucket/pre/fix/", "file:///data/remote", "file:///", "s3://b..x/y",
		"file:///a/../b", "s3://bucket/a%2e", "s3://bücket/x", "file://host/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		loc, err := objstore.ParseURI(s)
		if err != nil {
			if !errors.Is(err, objstore.ErrInvalidURI) {
				t.Fatalf("ParseURI(%q): untyped error %v", s, err)
			}
			return
		}
		again, err := objstore.ParseURI(loc.String())
		if err != nil || again != loc {
			t.Fatalf("ParseURI(%q) = %+v, but its String %q parses to %+v, %v", s, loc, loc.String(), again, err)
		}
	})
}

// FuzzKeyOf: whatever URI a stub carries, an accepted key is clean, maps
// back to the same URI, and for file:// stays inside the root directory.
func FuzzKeyOf(f *testing.F) {
	for _, c := range [][2]string{
		{"s3://bucket/pre", "s3://bucket/pre/v1/book.q.zst"},
		{"s3://bucket/pre", "s3://bucket/pre/../x"},
		{"s3://bucket", "s3://bucket/a/b"},
		{"file:///srv/remote", "file:///srv/remote/v1/x.idx"},
		{"file:///srv/remote", "file:///srv/remote/../../etc/passwd"},
		{"file:///srv/remote", "file:///srv/remote2/x"},
		{"file:///", "file:///x"},
	} {
		f.Add(c[0], c[1])
	}
	f.Fuzz(func(t *testing.T, root, uri string) {
		loc, err := objstore.ParseURI(root)
		if err != nil {
			return
		}
		key, err := loc.KeyOf(uri)
		if err != nil {
			if !errors.Is(err, objstore.ErrOutsideRoot) {
				t.Fatalf("KeyOf(%q) under %s: untyped error %v", uri, loc, err)
			}
			return
		}
		if err := objstore.ValidateKey(key); err != nil {
			t.Fatalf("KeyOf(%q) under %s accepted invalid key %q: %v", uri, loc, key, err)
		}
		if loc.URI(key) != uri {
			t.Fatalf("KeyOf(%q) = %q, whose URI is %q", uri, key, loc.URI(key))
		}
		for _, seg := range strings.Split(key, "/") {
			if seg == ".." || seg == "." || seg == "" {
				t.Fatalf("KeyOf(%q) = %q has segment %q", uri, key, seg)
			}
		}
		if loc.Scheme == objstore.SchemeFile {
			p := filepath.Join(loc.Dir, filepath.FromSlash(key))
			rel, err := filepath.Rel(loc.Dir, p)
			if err != nil || rel == ".." || strings.HasPrefix(rel, "../") || rel == "." {
				t.Fatalf("key %q escapes %s (path %s)", key, loc.Dir, p)
			}
		}
		if loc.Scheme == objstore.SchemeS3 && !strings.HasPrefix(loc.ObjectKey(key), loc.ObjectKey("")) {
			t.Fatalf("key %q leaves prefix %q", key, loc.Prefix)
		}
	})
}
