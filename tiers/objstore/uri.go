package objstore

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode/utf8"
)

// Schemes understood by ParseURI.
const (
	SchemeS3   = "s3"
	SchemeFile = "file"
)

// MaxKeyLen is S3's limit on a full object key, in bytes.
const MaxKeyLen = 1024

// tmpPrefix marks the file backend's in-flight uploads; keys may not use it.
const tmpPrefix = ".objstore-tmp-"

var (
	// ErrInvalidKey: a key is empty, too long, not clean ("..", "//") or uses
	// a reserved character or name.
	ErrInvalidKey = errors.New("invalid object key")
	// ErrInvalidURI: a URI is not a well-formed s3:// or file:// location.
	ErrInvalidURI = errors.New("invalid object store uri")
	// ErrOutsideRoot: a URI does not name an object inside the configured
	// remote root (other scheme, bucket or prefix, or a path escape).
	ErrOutsideRoot = errors.New("uri outside the configured remote root")
)

// Location is a parsed remote root: s3://bucket[/prefix] or file:///abs/dir.
// URIs come from configuration and from stub files written by earlier runs;
// both are data, so parsing is strict and never decodes escapes.
type Location struct {
	Scheme string // SchemeS3 or SchemeFile
	Bucket string // s3 only
	Prefix string // s3 only: key prefix without leading or trailing '/', may be ""
	Dir    string // file only: absolute, clean directory
}

// ParseURI parses a remote root URI. A trailing '/' is allowed and dropped.
func ParseURI(uri string) (Location, error) {
	bad := func(why string) (Location, error) {
		return Location{}, fmt.Errorf("parse %q: %s: %w", uri, why, ErrInvalidURI)
	}
	if err := checkChars(uri); err != nil {
		return bad(err.Error())
	}
	switch {
	case strings.HasPrefix(uri, "s3://"):
		rest := uri[len("s3://"):]
		bucket, prefix, _ := strings.Cut(rest, "/")
		if err := checkBucket(bucket); err != nil {
			return bad(err.Error())
		}
		prefix = strings.TrimSuffix(prefix, "/")
		if prefix != "" {
			if err := checkPath(prefix); err != nil {
				return bad("prefix: " + err.Error())
			}
			if len(prefix)+1 >= MaxKeyLen {
				return bad("prefix too long")
			}
		}
		return Location{Scheme: SchemeS3, Bucket: bucket, Prefix: prefix}, nil
	case strings.HasPrefix(uri, "file://"):
		p := uri[len("file://"):]
		if !strings.HasPrefix(p, "/") {
			return bad("file uri needs an empty host and an absolute path (file:///dir)")
		}
		if p != "/" {
			p = strings.TrimSuffix(p, "/")
			if err := checkPath(p[1:]); err != nil {
				return bad("path: " + err.Error())
			}
		}
		return Location{Scheme: SchemeFile, Dir: p}, nil
	default:
		return bad("scheme must be s3:// or file://")
	}
}

// String returns the canonical URI of the root.
func (l Location) String() string {
	switch l.Scheme {
	case SchemeS3:
		if l.Prefix == "" {
			return "s3://" + l.Bucket
		}
		return "s3://" + l.Bucket + "/" + l.Prefix
	case SchemeFile:
		return "file://" + l.Dir
	}
	return ""
}

// base is the URI text every object URI under l starts with.
func (l Location) base() string {
	s := l.String()
	if !strings.HasSuffix(s, "/") {
		s += "/"
	}
	return s
}

// URI returns the URI of key under l. The key must be valid (see ValidateKey).
func (l Location) URI(key string) string { return l.base() + key }

// ObjectKey is the full S3 key (prefix included) of key.
func (l Location) ObjectKey(key string) string {
	if l.Prefix == "" {
		return key
	}
	return l.Prefix + "/" + key
}

// KeyOf returns the key that uri names, or an error wrapping ErrOutsideRoot
// when uri is not an object strictly inside l: another scheme, bucket or
// prefix, the root itself, or a key that is not clean ("..", "//", escapes).
// Callers must resolve every URI read from a stub through KeyOf.
func (l Location) KeyOf(uri string) (string, error) {
	if l.Scheme != SchemeS3 && l.Scheme != SchemeFile {
		return "", fmt.Errorf("key of %q: root has no scheme: %w", uri, ErrInvalidURI)
	}
	base := l.base()
	rest, ok := strings.CutPrefix(uri, base)
	if !ok {
		return "", fmt.Errorf("key of %q: not under %s: %w", uri, l, ErrOutsideRoot)
	}
	if err := ValidateKey(rest); err != nil {
		return "", fmt.Errorf("key of %q under %s: %w: %w", uri, l, ErrOutsideRoot, err)
	}
	return rest, nil
}

// ValidateKey reports whether key can name an object: 1..MaxKeyLen bytes of
// UTF-8, '/'-separated non-empty segments that are not "." or "..", without
// control characters or any of `\ % ? #`, and no segment starting with the
// file backend's temp prefix.
func ValidateKey(key string) error {
	if key == "" {
		return fmt.Errorf("empty key: %w", ErrInvalidKey)
	}
	if len(key) > MaxKeyLen {
		return fmt.Errorf("key of %d bytes exceeds %d: %w", len(key), MaxKeyLen, ErrInvalidKey)
	}
	if err := checkChars(key); err != nil {
		return fmt.Errorf("key %q: %v: %w", key, err, ErrInvalidKey)
	}
	if err := checkPath(key); err != nil {
		return fmt.Errorf("key %q: %v: %w", key, err, ErrInvalidKey)
	}
	return nil
}

// checkChars rejects text that could be read two ways: invalid UTF-8, control
// characters, backslashes, and URL escapes or query/fragment markers (we never
// decode them, and refusing them keeps one spelling per object).
func checkChars(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("not valid utf-8")
	}
	for i, r := range s {
		switch {
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return fmt.Errorf("control character at byte %d", i)
		case r == '\\' || r == '%' || r == '?' || r == '#':
			return fmt.Errorf("reserved character %q at byte %d", r, i)
		}
	}
	return nil
}

// checkPath requires a relative, clean, '/'-separated path.
func checkPath(p string) error {
	if p == "" {
		return fmt.Errorf("empty path")
	}
	for seg := range strings.SplitSeq(p, "/") {
		switch {
		case seg == "":
			return fmt.Errorf("empty segment (leading, trailing or double '/')")
		case seg == "." || seg == "..":
			return fmt.Errorf("segment %q", seg)
		case strings.HasPrefix(seg, tmpPrefix):
			return fmt.Errorf("segment %q uses reserved prefix %q", seg, tmpPrefix)
		}
	}
	if path.Clean(p) != p { // belt and braces: the loop above should imply this
		return fmt.Errorf("not clean")
	}
	return nil
}

// checkBucket applies S3's bucket naming rules.
func checkBucket(b string) error {
	if len(b) < 3 || len(b) > 63 {
		return fmt.Errorf("bucket %q must be 3..63 characters", b)
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.'
		if !ok {
			return fmt.Errorf("bucket %q: character %q at %d not allowed", b, c, i)
		}
	}
	first, last := b[0], b[len(b)-1]
	if first == '-' || first == '.' || last == '-' || last == '.' || strings.Contains(b, "..") {
		return fmt.Errorf("bucket %q must start and end with a letter or digit", b)
	}
	return nil
}

// checkDir accepts "" or a valid key followed by '/': a directory ListDir can list.
func checkDir(dir string) error {
	if dir == "" {
		return nil
	}
	k, ok := strings.CutSuffix(dir, "/")
	if !ok {
		return fmt.Errorf("list %q: %w: a directory ends in '/'", dir, ErrInvalidKey)
	}
	if err := ValidateKey(k); err != nil {
		return fmt.Errorf("list %q: %w", dir, err)
	}
	return nil
}
