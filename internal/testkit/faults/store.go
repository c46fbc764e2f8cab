package faults

import (
	"bytes"
	"context"
	"io"

	"github.com/chronicle/chronicle/tiers/objstore"
)

// Store wraps an objstore.Store and consults the Injector before every call.
//
// Corrupt mode models a broken path to the server: a Put uploads one flipped bit (and,
// since the store itself would catch that against PutOptions.SHA256, it drops that
// expectation so the damaged object is really published); a Head reports a size one byte
// off; a GetRange returns one flipped bit.
type Store struct {
	objstore.Store
	In *Injector
}

var _ objstore.Store = (*Store)(nil)

func key(k string) string { return "store:" + k }

func (s *Store) Put(ctx context.Context, k string, r io.ReaderAt, size int64, opts objstore.PutOptions) (objstore.ObjectInfo, error) {
	switch s.In.decide(OpPut, key(k)) {
	case fail:
		return objstore.ObjectInfo{}, injected(OpPut, key(k))
	case corrupt:
		return s.Store.Put(ctx, k, &flipAt{r: r, at: size / 2}, size, objstore.PutOptions{IfAbsent: opts.IfAbsent})
	}
	return s.Store.Put(ctx, k, r, size, opts)
}

func (s *Store) Head(ctx context.Context, k string) (objstore.ObjectInfo, error) {
	switch s.In.decide(OpHead, key(k)) {
	case fail:
		return objstore.ObjectInfo{}, injected(OpHead, key(k))
	case corrupt:
		info, err := s.Store.Head(ctx, k)
		info.Size++
		return info, err
	}
	return s.Store.Head(ctx, k)
}

func (s *Store) GetRange(ctx context.Context, k string, off, n int64) (io.ReadCloser, error) {
	switch s.In.decide(OpGet, key(k)) {
	case fail:
		return nil, injected(OpGet, key(k))
	case corrupt:
		rc, err := s.Store.GetRange(ctx, k, off, n)
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(flip(b))), nil
	}
	return s.Store.GetRange(ctx, k, off, n)
}

func (s *Store) Delete(ctx context.Context, k string) error {
	if s.In.decide(OpDelete, key(k)) != pass {
		return injected(OpDelete, key(k))
	}
	return s.Store.Delete(ctx, k)
}

func (s *Store) List(ctx context.Context, prefix string) ([]objstore.ObjectInfo, error) {
	if s.In.decide(OpList, key(prefix)) != pass {
		return nil, injected(OpList, key(prefix))
	}
	return s.Store.List(ctx, prefix)
}

// flipAt serves r with the bit at offset at flipped.
type flipAt struct {
	r  io.ReaderAt
	at int64
}

func (f *flipAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.r.ReadAt(p, off)
	if f.at >= off && f.at < off+int64(n) {
		p[f.at-off] ^= 0x10
	}
	return n, err
}

func (s *Store) ListDir(ctx context.Context, dir string) ([]string, []objstore.ObjectInfo, error) {
	if s.In.decide(OpList, key(dir)) != pass {
		return nil, nil, injected(OpList, key(dir))
	}
	return s.Store.ListDir(ctx, dir)
}
