package lifecycle

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path"
	"strings"
	"time"

	"github.com/chronicle/chronicle/format/stub"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers"
	"github.com/chronicle/chronicle/tiers/objstore"
)

// Many capture hosts upload to one bucket. Before the first object of an upload the manager
// claims the version's slot below the partition's key (docs/format/remote-claim.md): with a
// create-only Put where the store has one (S3 If-None-Match: *, file:// link), else by
// create-then-verify. The claim's holder is the slot's only writer; every object of the
// upload is created only if absent too (a store that can), and a rollback deletes only
// what a claim of this host's upload holds. A host that finds the key held by another
// keeps its partition local and uploads it under its own slot, hosts/{id}.

// ErrHostIDTaken: the slot of this host's own id holds another upload's claim: two hosts
// share one id (a configuration error), or a cold tree was lost. Nothing is overwritten.
var ErrHostIDTaken = errors.New("host id claimed by another upload")

// maxClaimAttempts bounds the rounds of create-then-verify a contended slot gets before
// the host gives it up as held by another.
const maxClaimAttempts = 5

// intent is the content of the upload intent: what recovery needs to undo the upload.
type intent struct {
	Zst     string    `json:"zst"`
	Idx     string    `json:"idx"`
	Started time.Time `json:"started"`
	Host    string    `json:"host,omitempty"`
	// Slot is the version's slot the upload may hold a claim on; nil in intents written
	// before claims existed (their rollback deletes the key's own objects).
	Slot  *string `json:"slot,omitempty"`
	Nonce string  `json:"nonce,omitempty"`
}

func hostOr(h, alt string) string {
	if h == "" {
		return alt
	}
	return h
}

func newNonce() string {
	var b [16]byte
	crand.Read(b[:]) // never fails on Linux
	return hex.EncodeToString(b[:])
}

// claimResult is what claiming a slot found.
type claimResult struct {
	held bool // this upload holds the slot now
	// adopt is this host's own finished upload of the same bytes, found in the bucket (a
	// cold tree that lost its stub): nothing to upload.
	adopt *stub.Stub
	// holder is another upload's claim on the slot; holderStub the host a stub without a
	// claim names (an upload from before claims, or with an unreadable claim).
	holder     *stub.Claim
	holderStub string
}

func (r claimResult) holderName() string {
	switch {
	case r.holder != nil:
		return r.holder.Host
	case r.holderStub != "":
		return r.holderStub
	}
	return "unknown"
}

// claim makes this upload (nonce) the holder of partition k's slot, or reports who holds it.
func (m *Manager) claim(ctx context.Context, k layout.Key, slot, nonce, zstSHA, idxSHA string) (claimResult, error) {
	c := &stub.Claim{Host: m.host, Nonce: nonce, Partition: k.Dir(), Slot: slot,
		ClaimedAt: m.now().UTC().Truncate(time.Millisecond), ZstSHA256: zstSHA}
	b, err := c.Marshal()
	if err != nil {
		return claimResult{}, err
	}
	cond, err := m.store.Conditional(ctx)
	if err != nil {
		return claimResult{}, err
	}
	var won bool
	var other *stub.Claim
	if cond {
		key := stub.ClaimKey(k, slot)
		_, err := m.store.Put(ctx, key, bytes.NewReader(b), int64(len(b)), objstore.PutOptions{IfAbsent: true, SHA256: objstore.SHA256Hex(b)})
		switch {
		case err == nil:
			won = true
		case errors.Is(err, objstore.ErrExists):
			if other, err = m.readClaim(ctx, k, slot); err != nil && !errors.Is(err, stub.ErrInvalid) {
				return claimResult{}, fmt.Errorf("read the claim on %s: %w", m.store.URI(key), err)
			}
		default:
			return claimResult{}, fmt.Errorf("claim %s: %w", m.store.URI(key), err)
		}
	} else if won, other, err = m.claimByList(ctx, k, c, b); err != nil {
		return claimResult{}, err
	}
	if won {
		// The slot must be empty: objects there without a claim were put by a version
		// before claims (or by a writer that ignores them) and are not this upload's to
		// replace, nor, later, to delete.
		objs, err := m.slotObjects(ctx, k, slot)
		if err != nil {
			m.releaseClaim(k, slot, nonce)
			return claimResult{}, err
		}
		if len(objs) == 0 {
			return claimResult{held: true}, nil
		}
		existing, err := m.bucketStub(ctx, k, slot)
		if err != nil {
			m.releaseClaim(k, slot, nonce)
			return claimResult{}, err
		}
		if existing != nil && existing.Zst.SHA256 == zstSHA && existing.Idx.SHA256 == idxSHA && (existing.Host == m.host || existing.Host == "") {
			return claimResult{adopt: existing}, nil // this host's upload from before claims
		}
		m.releaseClaim(k, slot, nonce)
		name := "objects without a claim"
		if existing != nil {
			name = hostOr(existing.Host, "a stub without a claim")
		}
		return claimResult{holderStub: name}, nil
	}
	existing, err := m.bucketStub(ctx, k, slot)
	if err != nil {
		return claimResult{}, err
	}
	same := existing != nil && existing.Zst.SHA256 == zstSHA && existing.Idx.SHA256 == idxSHA
	if same && existing.Host == m.host {
		return claimResult{adopt: existing}, nil
	}
	res := claimResult{holder: other}
	if other == nil && existing != nil {
		res.holderStub = existing.Host
	}
	return res, nil
}

// claimByList is the create-then-verify claim for stores without create-only Puts (a
// strongly consistent store is assumed, as S3 is): write this upload's entry
// claims/{host}-{nonce} (a key no other upload writes), then list the entries. Alone and
// with no holder record: the slot is ours, and the holder record (the claim object) is
// written for others to read. Otherwise withdraw the entry; a holder record names the
// winner; with none, try again after a random pause, up to maxClaimAttempts rounds, then
// give the slot up as held by one of the others. At most one upload wins: of two that
// both wrote their entry, the second to list sees the first's.
func (m *Manager) claimByList(ctx context.Context, k layout.Key, c *stub.Claim, b []byte) (won bool, other *stub.Claim, err error) {
	prefix := stub.ClaimsPrefix(k, c.Slot)
	entry := prefix + c.Host + "-" + c.Nonce
	sum := objstore.SHA256Hex(b)
	for attempt := 0; ; attempt++ {
		if _, err := m.store.Put(ctx, entry, bytes.NewReader(b), int64(len(b)), objstore.PutOptions{SHA256: sum}); err != nil {
			return false, nil, fmt.Errorf("claim entry %s: %w", m.store.URI(entry), err)
		}
		objs, err := m.store.List(ctx, prefix)
		if err != nil {
			return false, nil, fmt.Errorf("list claims %s: %w", m.store.URI(prefix), err)
		}
		var others []string
		for _, o := range objs {
			if o.Key != entry {
				others = append(others, o.Key)
			}
		}
		holder, herr := m.readClaim(ctx, k, c.Slot)
		if herr != nil && !errors.Is(herr, objstore.ErrNotFound) && !errors.Is(herr, stub.ErrInvalid) {
			return false, nil, herr
		}
		unreadable := errors.Is(herr, stub.ErrInvalid)
		if len(others) == 0 && holder == nil && !unreadable {
			key := stub.ClaimKey(k, c.Slot)
			if _, err := m.store.Put(ctx, key, bytes.NewReader(b), int64(len(b)), objstore.PutOptions{SHA256: sum}); err != nil {
				return false, nil, fmt.Errorf("claim %s: %w", m.store.URI(key), err)
			}
			return true, nil, nil
		}
		if err := m.store.Delete(ctx, entry); err != nil {
			return false, nil, fmt.Errorf("withdraw claim entry %s: %w", m.store.URI(entry), err)
		}
		if holder != nil || unreadable {
			return false, holder, nil
		}
		if attempt+1 >= maxClaimAttempts {
			if len(others) > 0 {
				other, _ = m.readObjectClaim(ctx, others[0])
			}
			return false, other, nil
		}
		pause := time.Duration(rand.Int64N(int64(20*time.Millisecond) << attempt))
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return false, nil, ctx.Err()
		}
	}
}

// readClaim reads the claim object of k's slot: nil and ErrNotFound when there is none;
// an error wrapping stub.ErrInvalid when it cannot be read as a claim.
func (m *Manager) readClaim(ctx context.Context, k layout.Key, slot string) (*stub.Claim, error) {
	return m.readObjectClaim(ctx, stub.ClaimKey(k, slot))
}

func (m *Manager) readObjectClaim(ctx context.Context, key string) (*stub.Claim, error) {
	b, err := m.getSmall(ctx, key, 4<<10)
	if err != nil {
		return nil, err
	}
	return stub.ParseClaim(b, m.store.URI(key))
}

// getSmall reads a whole small object.
func (m *Manager) getSmall(ctx context.Context, key string, max int64) ([]byte, error) {
	info, err := m.store.Head(ctx, key)
	if err != nil {
		return nil, err
	}
	if info.Size > max {
		return nil, fmt.Errorf("%s: %w: %d bytes, at most %d", m.store.URI(key), stub.ErrInvalid, info.Size, max)
	}
	b := make([]byte, info.Size)
	if err := objstore.ReadRange(ctx, m.store, key, 0, b); err != nil {
		return nil, err
	}
	return b, nil
}

// bucketStub reads the stub copy of k's version in slot: nil when there is none. An
// unreadable one counts as present (someone else's), named by its key.
func (m *Manager) bucketStub(ctx context.Context, k layout.Key, slot string) (*stub.Stub, error) {
	key := stub.ObjectKeyIn(k, slot)
	b, err := m.getSmall(ctx, key, 1<<20)
	switch {
	case errors.Is(err, objstore.ErrNotFound):
		return nil, nil
	case err != nil && !errors.Is(err, stub.ErrInvalid):
		return nil, fmt.Errorf("read %s: %w", m.store.URI(key), err)
	}
	var s *stub.Stub
	if err == nil {
		s, err = stub.Parse(b, m.store.URI(key))
	}
	if err == nil && s.Slot == slot {
		if _, _, err = s.Validate(m.store, k, m.store.URI(key)); err == nil {
			return s, nil
		}
	}
	return &stub.Stub{Host: "(unreadable stub " + m.store.URI(key) + ")"}, nil
}

// releaseClaim withdraws this upload's claim on k's slot: the holder record only if it is
// this upload's, and the create-then-verify entry, which only this upload writes.
func (m *Manager) releaseClaim(k layout.Key, slot, nonce string) {
	ctx, cancel := context.WithTimeout(context.Background(), remoteCleanupTimeout)
	defer cancel()
	if err := m.deleteClaim(ctx, k, slot, nonce); err != nil {
		m.log.Warn("claim left for the next recovery", "partition", k.String(), "slot", slot, "err", err)
	}
}

func (m *Manager) deleteClaim(ctx context.Context, k layout.Key, slot, nonce string) error {
	c, err := m.readClaim(ctx, k, slot)
	switch {
	case err == nil && c.Host == m.host && c.Nonce == nonce:
		if err := m.store.Delete(ctx, stub.ClaimKey(k, slot)); err != nil {
			return err
		}
	case err != nil && !errors.Is(err, objstore.ErrNotFound) && !errors.Is(err, stub.ErrInvalid):
		return err
	}
	return m.store.Delete(ctx, stub.ClaimsPrefix(k, slot)+m.host+"-"+nonce)
}

// deleteOwn deletes the objects of k's version in slot if this host's upload (nonce) holds
// the slot's claim, then the claim: the stub copy first (research hosts stop listing the
// version before its files go), then every other object of the slot, never those of other
// versions below it (hosts/, merged/) or other hosts' claim entries. With nonce "" (an
// intent or stub from before claims) a slot without a claim is deleted as before claims;
// one whose claim is another host's is left alone.
func (m *Manager) deleteOwn(k layout.Key, slot, nonce string) error {
	return m.deleteVersion(k, slot, nonce, true)
}

// deleteClaimed is deleteOwn for a version whose nonce is unknown (a damaged stub): only a
// slot whose claim is this host's is deleted.
func (m *Manager) deleteClaimed(k layout.Key, slot string) error {
	return m.deleteVersion(k, slot, "", false)
}

func (m *Manager) deleteVersion(k layout.Key, slot, nonce string, legacy bool) error {
	if m.store == nil {
		return tiers.ErrNoRemote
	}
	ctx, cancel := context.WithTimeout(context.Background(), remoteCleanupTimeout)
	defer cancel()
	c, err := m.readClaim(ctx, k, slot)
	switch {
	case errors.Is(err, objstore.ErrNotFound):
		c = nil
		if !legacy {
			return nil
		}
		if nonce != "" {
			// Never claimed (or already released): at most this upload's entry is left.
			return m.store.Delete(ctx, stub.ClaimsPrefix(k, slot)+m.host+"-"+nonce)
		}
	case errors.Is(err, stub.ErrInvalid):
		return nil // not a claim of ours
	case err != nil:
		return err
	case c.Host != m.host || (nonce != "" && c.Nonce != nonce):
		if nonce != "" {
			return m.store.Delete(ctx, stub.ClaimsPrefix(k, slot)+m.host+"-"+nonce)
		}
		return nil
	}
	if err := m.store.Delete(ctx, stub.ObjectKeyIn(k, slot)); err != nil {
		return err
	}
	objs, err := m.slotObjects(ctx, k, slot)
	if err != nil {
		return err
	}
	var errs []error
	for _, key := range objs {
		if err := m.store.Delete(ctx, key); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if c == nil {
		return nil
	}
	return m.deleteClaim(ctx, k, slot, c.Nonce)
}

// slotObjects lists the keys of the objects of k's version in slot: everything below the
// slot but the claim and the reserved directories of other versions and claim entries.
func (m *Manager) slotObjects(ctx context.Context, k layout.Key, slot string) ([]string, error) {
	dir := stub.SlotDir(k, slot) + "/"
	objs, err := m.store.List(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", m.store.URI(dir), err)
	}
	var out []string
	for _, o := range objs {
		rel := strings.TrimPrefix(o.Key, dir)
		if stub.Reserved(rel) || rel == layout.ClaimName {
			continue
		}
		out = append(out, o.Key)
	}
	return out, nil
}

// readIntent reads an upload intent; a missing or unreadable one is the zero intent (an
// intent from before claims: rolled back as then).
func (m *Manager) readIntent(dir string) intent {
	var in intent
	b, err := m.mv.readSmall(path.Join(dir, intentName), 64<<10)
	if err == nil {
		json.Unmarshal(b, &in)
	}
	if in.Slot != nil && !stub.ValidSlot(*in.Slot) {
		in.Slot = nil
	}
	return in
}

func (in intent) slot() string {
	if in.Slot == nil {
		return ""
	}
	return *in.Slot
}
