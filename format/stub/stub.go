// Package stub reads and writes book.q.zst.remote.json, the local record of a cold
// partition whose files live in the object store (docs/format/remote-stub.md). The tier
// manager writes it after verified uploads; readers resolve the remote tier through it.
package stub

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"time"

	"github.com/chronicle/chronicle/layout"
)

// Format and Version identify book.q.zst.remote.json (docs/format/remote-stub.md).
const (
	Format  = "chronicle-remote-stub"
	Version = 1
	maxSize = 64 << 10
)

// ErrInvalid reports a stub that does not parse, or names objects it must not.
var ErrInvalid = errors.New("invalid remote stub")

// Object describes one uploaded object.
type Object struct {
	URI    string `json:"uri"`
	Size   int64  `json:"size"`
	ETag   string `json:"etag"`
	SHA256 string `json:"sha256"` // lowercase hex of the whole object
}

// Stub is the local record of a partition whose cold files live in the object store. It is
// written only after both uploads were verified, and it is data, not a command: Validate
// refuses any stub that points outside the configured remote or at another partition.
type Stub struct {
	Format           string    `json:"format"`
	Version          int       `json:"version"`
	Zst              Object    `json:"zst"`
	Idx              Object    `json:"idx"`
	UncompressedSize int64     `json:"uncompressed_size"`
	UploadedAt       time.Time `json:"uploaded_at"`
}

// Marshal encodes the stub as indented JSON with a trailing newline.
func (s *Stub) Marshal() ([]byte, error) {
	s.Format, s.Version = Format, Version
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Parse decodes and checks a stub's own consistency. name labels errors.
func Parse(b []byte, name string) (*Stub, error) {
	if len(b) > maxSize {
		return nil, fmt.Errorf("%s: %w: %d bytes, limit %d", name, ErrInvalid, len(b), maxSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var s Stub
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", name, ErrInvalid, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s: %w: trailing data after the JSON object", name, ErrInvalid)
	}
	bad := func(field, why string, args ...any) error {
		return fmt.Errorf("%s: %w: field %s: %s", name, ErrInvalid, field, fmt.Sprintf(why, args...))
	}
	switch {
	case s.Format != Format:
		return nil, bad("format", "%q, want %q", s.Format, Format)
	case s.Version != Version:
		return nil, bad("version", "%d, this reader knows %d", s.Version, Version)
	case s.UncompressedSize < 0:
		return nil, bad("uncompressed_size", "%d is negative", s.UncompressedSize)
	}
	for _, o := range []struct {
		field string
		obj   Object
	}{{"zst", s.Zst}, {"idx", s.Idx}} {
		switch {
		case o.obj.URI == "":
			return nil, bad(o.field+".uri", "empty")
		case o.obj.Size <= 0:
			return nil, bad(o.field+".size", "%d, want > 0", o.obj.Size)
		case !isHexSHA256(o.obj.SHA256):
			return nil, bad(o.field+".sha256", "%q is not 64 lowercase hex digits", o.obj.SHA256)
		}
	}
	return &s, nil
}

func isHexSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && s == string(bytes.ToLower([]byte(s)))
}

// keyResolver maps a URI to a key inside the configured remote root (objstore.Store.KeyOf).
type keyResolver interface {
	KeyOf(uri string) (string, error)
}

// Keys returns the object keys a stub for partition k must name.
func Keys(k layout.Key) (zstKey, idxKey string) {
	return path.Join(k.Dir(), layout.ZstName), path.Join(k.Dir(), layout.IdxName)
}

// Validate checks that the stub's URIs lie inside the remote root and name exactly this
// partition's objects, and returns their keys.
func (s *Stub) Validate(store keyResolver, k layout.Key, name string) (zstKey, idxKey string, err error) {
	wantZst, wantIdx := Keys(k)
	zk, err := store.KeyOf(s.Zst.URI)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w: field zst.uri: %v", name, ErrInvalid, err)
	}
	ik, err := store.KeyOf(s.Idx.URI)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w: field idx.uri: %v", name, ErrInvalid, err)
	}
	if zk != wantZst {
		return "", "", fmt.Errorf("%s: %w: field zst.uri: key %q, partition needs %q", name, ErrInvalid, zk, wantZst)
	}
	if ik != wantIdx {
		return "", "", fmt.Errorf("%s: %w: field idx.uri: key %q, partition needs %q", name, ErrInvalid, ik, wantIdx)
	}
	return zk, ik, nil
}
