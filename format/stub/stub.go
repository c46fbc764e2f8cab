// Package stub reads and writes book.q.zst.remote.json, the local record of a cold
// partition whose files live in the object store (docs/format/remote-stub.md). The tier
// manager writes it after verified uploads; readers resolve the remote tier through it.
package stub

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/chronicle/chronicle/internal/fileutil"
	"github.com/chronicle/chronicle/layout"
)

// Format and Version identify book.q.zst.remote.json (docs/format/remote-stub.md). Version
// 2 added Files; version 3 added Host, Slot and Claim (many hosts, one bucket). Versions 1
// and 2 are still read.
const (
	Format   = "chronicle-remote-stub"
	Version  = 3
	maxSize  = 64 << 10
	maxFiles = 64
	// MaxFileSize bounds a file that travels with the book (meta.json, index/, derived/).
	MaxFileSize = 1 << 40
	// MaxIdxSize bounds a book's .idx (2 million frames of 32 bytes: 2 TiB of book at 1 MiB
	// frames). Readers allocate the .idx whole, so a stub may not promise more.
	MaxIdxSize = 64 << 20
	// MaxBookSize bounds a book and its .zst.
	MaxBookSize = 1 << 44
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

// File is a file that travels with the book in the bucket: meta.json, index/time.idx,
// derived/book.parquet... Its object key is the partition directory joined with Name.
type File struct {
	Name   string `json:"name"` // relative to the partition directory, '/'-separated
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // lowercase hex of the whole file
}

// Stub is the local record of a partition whose cold files live in the object store. It is
// written only after both uploads were verified, and it is data, not a command: Validate
// refuses any stub that points outside the configured remote or at another partition.
type Stub struct {
	Format           string `json:"format"`
	Version          int    `json:"version"`
	Zst              Object `json:"zst"`
	Idx              Object `json:"idx"`
	UncompressedSize int64  `json:"uncompressed_size"`
	// HeaderSize is the book's header length (version 2; 0 when unknown), so that a reader
	// can describe the book (its book.npy) without fetching a frame.
	HeaderSize int64     `json:"header_size,omitempty"`
	UploadedAt time.Time `json:"uploaded_at"`
	// Files are the partition's other files, uploaded and verified with the book; the bucket
	// holds a copy of this stub as its last object, so a host with only the bucket sees the
	// whole partition (docs/research-hosts.md). Empty in version 1 stubs.
	Files []File `json:"files,omitempty"`
	// Host is the id of the host that uploaded the partition (version 3).
	Host string `json:"host,omitempty"`
	// Slot is where below the partition's key the objects are: "" (the key itself, held by
	// the first host to claim it), "merged" (an A/B merge of several hosts' captures) or
	// "hosts/{id}" (a host that found the key held by another). Version 3.
	Slot string `json:"slot,omitempty"`
	// Claim is the nonce of the claim object the upload held (docs/format/remote-claim.md);
	// empty for partitions uploaded before claims existed. Version 3.
	Claim string `json:"claim,omitempty"`
}

// Marshal encodes the stub as indented JSON with a trailing newline: at the current
// version, unless the stub is a version 1 or 2 one read back and left without the version 3
// fields (it is then written as it was).
func (s *Stub) Marshal() ([]byte, error) {
	s.normalize()
	return fileutil.EncodeJSON(s)
}

func (s *Stub) normalize() {
	s.Format = Format
	if s.Version == 0 || s.Version > 2 || s.Host != "" || s.Slot != "" || s.Claim != "" {
		s.Version = Version
	}
}

// Parse decodes and checks a stub's own consistency. name labels errors.
func Parse(b []byte, name string) (*Stub, error) {
	if len(b) > maxSize {
		return nil, fmt.Errorf("%s: %w: %d bytes, limit %d", name, ErrInvalid, len(b), maxSize)
	}
	var s Stub
	if err := fileutil.DecodeJSON(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", name, ErrInvalid, err)
	}
	if err := s.Check(name); err != nil {
		return nil, err
	}
	return &s, nil
}

// Check is Parse's check of a decoded stub's own consistency (a stub embedded in another
// document, such as a catalog, is checked with it). name labels errors.
func (s *Stub) Check(name string) error {
	bad := func(field, why string, args ...any) error {
		return fmt.Errorf("%s: %w: field %s: %s", name, ErrInvalid, field, fmt.Sprintf(why, args...))
	}
	switch {
	case s.Format != Format:
		return bad("format", "%q, want %q", s.Format, Format)
	case s.Version < 1 || s.Version > Version:
		return bad("version", "%d, this reader knows 1 to %d", s.Version, Version)
	case s.Version == 1 && len(s.Files) > 0:
		return bad("files", "not in a version 1 stub")
	case s.Version < 3 && (s.Host != "" || s.Slot != "" || s.Claim != ""):
		return bad("host", "host, slot and claim are version 3 fields, this stub is version %d", s.Version)
	case s.Version >= 3 && !layout.ValidName(s.Host):
		return bad("host", "%q is not a host id (lowercase letters, digits, '-', '_', '.')", s.Host)
	case !ValidSlot(s.Slot):
		return bad("slot", "%q, want \"\", %q or hosts/{host id}", s.Slot, SlotMerged)
	case s.Claim != "" && !isHexNonce(s.Claim):
		return bad("claim", "%q is not 32 lowercase hex digits", s.Claim)
	case s.HeaderSize < 0 || s.HeaderSize > s.UncompressedSize:
		return bad("header_size", "%d, want 0..uncompressed_size (%d)", s.HeaderSize, s.UncompressedSize)
	case len(s.Files) > maxFiles:
		return bad("files", "%d entries, at most %d", len(s.Files), maxFiles)
	case s.UncompressedSize < 0 || s.UncompressedSize > MaxBookSize:
		return bad("uncompressed_size", "%d, want 0..%d", s.UncompressedSize, int64(MaxBookSize))
	case s.Idx.Size > MaxIdxSize:
		return bad("idx.size", "%d, at most %d", s.Idx.Size, MaxIdxSize)
	case s.Zst.Size > MaxBookSize:
		return bad("zst.size", "%d, at most %d", s.Zst.Size, int64(MaxBookSize))
	}
	for _, o := range []struct {
		field string
		obj   Object
	}{{"zst", s.Zst}, {"idx", s.Idx}} {
		switch {
		case o.obj.URI == "":
			return bad(o.field+".uri", "empty")
		case o.obj.Size <= 0:
			return bad(o.field+".size", "%d, want > 0", o.obj.Size)
		case !isHexSHA256(o.obj.SHA256):
			return bad(o.field+".sha256", "%q is not 64 lowercase hex digits", o.obj.SHA256)
		}
	}
	seen := map[string]bool{}
	for i, f := range s.Files {
		field := fmt.Sprintf("files[%d]", i)
		switch {
		case !layout.ValidFilePath(f.Name) || IsBookFile(f.Name) || Reserved(f.Name):
			return bad(field+".name", "%q is not a partition file that travels with the book", f.Name)
		case seen[f.Name]:
			return bad(field+".name", "%q listed twice", f.Name)
		case f.Size < 0 || f.Size > MaxFileSize:
			return bad(field+".size", "%d, want 0..%d", f.Size, int64(MaxFileSize))
		case !isHexSHA256(f.SHA256):
			return bad(field+".sha256", "%q is not 64 lowercase hex digits", f.SHA256)
		}
		seen[f.Name] = true
	}
	return nil
}

// IsBookFile reports whether name (relative to a partition directory) is one of the
// book's own files, which the stub describes in zst and idx or which stay local.
func IsBookFile(name string) bool {
	switch name {
	case layout.BookName, layout.ZstName, layout.IdxName, layout.StubName, layout.ClaimName, layout.CollisionName:
		return true
	}
	return false
}

// Directories below a partition's key in the bucket that belong to other versions of the
// partition or to the claim protocol, never to its files.
const (
	SlotMerged = "merged" // the A/B merge of several hosts' captures
	HostsDir   = "hosts"  // hosts/{id}: a host's own version when another holds the key
	ClaimsDir  = "claims" // claims/{host}-{nonce}: the create-then-verify protocol
)

// Reserved reports whether a partition file name lies in one of the reserved directories,
// so that no travelling file can shadow another version or a claim.
func Reserved(name string) bool {
	first, _, _ := strings.Cut(name, "/")
	return first == SlotMerged || first == HostsDir || first == ClaimsDir
}

// HostSlot is the slot of host's own version of a partition: hosts/{host}.
func HostSlot(host string) string { return HostsDir + "/" + host }

// ValidSlot accepts "", "merged" and hosts/{valid host id}.
func ValidSlot(slot string) bool {
	if slot == "" || slot == SlotMerged {
		return true
	}
	h, ok := strings.CutPrefix(slot, HostsDir+"/")
	return ok && layout.ValidName(h)
}

// SlotHost returns the host id of a hosts/{id} slot, "" for the others.
func SlotHost(slot string) string {
	h, _ := strings.CutPrefix(slot, HostsDir+"/")
	if h == slot {
		return ""
	}
	return h
}

// SlotDir is the key prefix (without a trailing '/') of a version of partition k.
func SlotDir(k layout.Key, slot string) string { return path.Join(k.Dir(), slot) }

// KeysIn returns the .zst and .idx keys of a version of partition k.
func KeysIn(k layout.Key, slot string) (zstKey, idxKey string) {
	d := SlotDir(k, slot)
	return path.Join(d, layout.ZstName), path.Join(d, layout.IdxName)
}

// ObjectKeyIn is the key of a version's stub copy.
func ObjectKeyIn(k layout.Key, slot string) string {
	return path.Join(SlotDir(k, slot), layout.StubName)
}

// FileKeyIn is the key of a version's travelling file name.
func FileKeyIn(k layout.Key, slot, name string) string { return path.Join(SlotDir(k, slot), name) }

// ClaimKey is the key of the claim object of a version's slot.
func ClaimKey(k layout.Key, slot string) string { return path.Join(SlotDir(k, slot), layout.ClaimName) }

// ClaimsPrefix is the key prefix (ending in '/') of the create-then-verify claim entries of
// a version's slot.
func ClaimsPrefix(k layout.Key, slot string) string {
	return path.Join(SlotDir(k, slot), ClaimsDir) + "/"
}

func isHexNonce(s string) bool {
	if len(s) != 32 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && s == strings.ToLower(s)
}

// File returns the entry for name, or nil.
func (s *Stub) File(name string) *File {
	for i := range s.Files {
		if s.Files[i].Name == name {
			return &s.Files[i]
		}
	}
	return nil
}

// FileKey is the object key of a partition file that travels with the book.
func FileKey(k layout.Key, name string) string { return path.Join(k.Dir(), name) }

// ObjectKey is the key of the bucket's copy of the stub: the last object an upload writes,
// so that its presence means the whole partition is in the bucket.
func ObjectKey(k layout.Key) string { return path.Join(k.Dir(), layout.StubName) }

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

// Validate checks that the stub's URIs lie inside the remote root and name exactly the
// objects of this partition's version (its Slot), and returns their keys.
func (s *Stub) Validate(store keyResolver, k layout.Key, name string) (zstKey, idxKey string, err error) {
	wantZst, wantIdx := KeysIn(k, s.Slot)
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
