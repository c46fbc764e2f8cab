package stub

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/chronicle/chronicle/internal/fileutil"
	"github.com/chronicle/chronicle/layout"
)

// A claim makes one host the only writer of a version's slot in the bucket: the tier
// manager creates it before the first object of an upload, only if absent, and deletes it
// only when it rolls its own upload back (docs/format/remote-claim.md).

// Claim format and version.
const (
	ClaimFormat  = "chronicle-remote-claim"
	ClaimVersion = 1
	maxClaimSize = 4 << 10
)

// Claim is the content of a claim object (and of a create-then-verify claim entry).
type Claim struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
	// Host is the claiming host's id; Nonce (32 lowercase hex digits, random per upload)
	// tells two uploads of one host apart, and a host id used by two hosts from its owner.
	Host  string `json:"host"`
	Nonce string `json:"nonce"`
	// Partition and Slot say what is claimed: v1/{venue}/{symbol}/{date} and the version's
	// slot ("", "merged", "hosts/{id}").
	Partition string    `json:"partition"`
	Slot      string    `json:"slot"`
	ClaimedAt time.Time `json:"claimed_at"`
	// ZstSHA256 is the SHA-256 of the book.q.zst the claimant is uploading.
	ZstSHA256 string `json:"zst_sha256"`
}

// Marshal encodes the claim (indented JSON, trailing newline).
func (c *Claim) Marshal() ([]byte, error) {
	c.Format, c.Version = ClaimFormat, ClaimVersion
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	return fileutil.EncodeJSON(c)
}

// ParseClaim decodes and checks a claim. name labels errors.
func ParseClaim(b []byte, name string) (*Claim, error) {
	if len(b) > maxClaimSize {
		return nil, fmt.Errorf("%s: %w: %d bytes, limit %d", name, ErrInvalid, len(b), maxClaimSize)
	}
	var c Claim
	if err := fileutil.DecodeJSON(b, &c); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", name, ErrInvalid, err)
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &c, nil
}

func (c *Claim) check() error {
	bad := func(field, why string, args ...any) error {
		return fmt.Errorf("%w: field %s: %s", ErrInvalid, field, fmt.Sprintf(why, args...))
	}
	switch {
	case c.Format != ClaimFormat:
		return bad("format", "%q, want %q", c.Format, ClaimFormat)
	case c.Version != ClaimVersion:
		return bad("version", "%d, this reader knows %d", c.Version, ClaimVersion)
	case !layout.ValidName(c.Host):
		return bad("host", "%q is not a host id", c.Host)
	case !isHexNonce(c.Nonce):
		return bad("nonce", "%q is not 32 lowercase hex digits", c.Nonce)
	case !ValidSlot(c.Slot):
		return bad("slot", "%q", c.Slot)
	case c.ZstSHA256 != "" && !isHexSHA256(c.ZstSHA256):
		return bad("zst_sha256", "%q is not 64 lowercase hex digits", c.ZstSHA256)
	}
	if l, err := layout.ParseLogical(c.Partition); err != nil || l.Depth() != 3 || l.Key.Dir() != c.Partition {
		return bad("partition", "%q is not v1/{venue}/{symbol}/{date}", c.Partition)
	}
	return nil
}

// Same reports whether two claims are the same upload's (host and nonce).
func (c *Claim) Same(o *Claim) bool { return o != nil && c.Host == o.Host && c.Nonce == o.Nonce }

// Collision format and version: book.q.zst.collision.json in a cold partition directory.
const (
	CollisionFormat  = "chronicle-collision"
	CollisionVersion = 1
)

// Collision is the local record of a partition whose key in the bucket another host holds:
// the book stays local (served from the cold tier) and was uploaded under this host's own
// slot, hosts/{id}, whose stub copy Uploaded describes. Written atomically once that
// upload was verified: the commit point of such an upload.
type Collision struct {
	Format    string `json:"format"`
	Version   int    `json:"version"`
	Partition string `json:"partition"`
	Host      string `json:"host"` // this host
	// Holder is the claim found on the key (nil when the key held a stub without a claim:
	// an upload from before claims existed, or one still in progress).
	Holder *Claim `json:"holder,omitempty"`
	// HolderStub is the host id the key's stub names, when it had one.
	HolderStub string    `json:"holder_stub,omitempty"`
	DetectedAt time.Time `json:"detected_at"`
	// Uploaded is this host's version, as its stub copy in the bucket says.
	Uploaded *Stub `json:"uploaded"`
}

// Marshal encodes the record.
func (c *Collision) Marshal() ([]byte, error) {
	c.Format, c.Version = CollisionFormat, CollisionVersion
	if c.Holder != nil {
		c.Holder.Format, c.Holder.Version = ClaimFormat, ClaimVersion
	}
	if c.Uploaded != nil {
		c.Uploaded.normalize()
	}
	return fileutil.EncodeJSON(c)
}

// ParseCollision decodes and checks a collision record.
func ParseCollision(b []byte, name string) (*Collision, error) {
	if len(b) > maxSize+maxClaimSize+4096 {
		return nil, fmt.Errorf("%s: %w: %d bytes", name, ErrInvalid, len(b))
	}
	var c Collision
	if err := fileutil.DecodeJSON(b, &c); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", name, ErrInvalid, err)
	}
	switch {
	case c.Format != CollisionFormat || c.Version != CollisionVersion:
		return nil, fmt.Errorf("%s: %w: format %q version %d, want %q %d", name, ErrInvalid, c.Format, c.Version, CollisionFormat, CollisionVersion)
	case !layout.ValidName(c.Host):
		return nil, fmt.Errorf("%s: %w: field host: %q", name, ErrInvalid, c.Host)
	case c.Uploaded == nil:
		return nil, fmt.Errorf("%s: %w: field uploaded: missing", name, ErrInvalid)
	}
	if c.Holder != nil {
		if err := c.Holder.check(); err != nil {
			return nil, fmt.Errorf("%s: holder: %w", name, err)
		}
	}
	ub, err := json.Marshal(c.Uploaded)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", name, ErrInvalid, err)
	}
	if _, err := Parse(ub, name+": uploaded"); err != nil {
		return nil, err
	}
	return &c, nil
}
