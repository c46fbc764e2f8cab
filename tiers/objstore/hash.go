package objstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
)

type digest = [sha256.Size]byte

const hashChunk = 1 << 20

// hashInput reads size bytes of r once and returns the SHA-256 of the whole and,
// when partSize > 0, of each partSize-long part. The whole-object hash runs in
// its own goroutine so the two digests cost about one pass on two cores.
func hashInput(ctx context.Context, key string, r io.ReaderAt, size, partSize int64) (digest, []digest, error) {
	var parts []digest
	if partSize <= 0 {
		partSize = size + 1 // one part that never ends: no part digests
	} else {
		parts = make([]digest, 0, (size+partSize-1)/partSize)
	}

	free := make(chan []byte, 3)
	for range cap(free) {
		free <- make([]byte, hashChunk)
	}
	full := make(chan []byte, cap(free))
	fullDone := make(chan digest, 1)
	go func() {
		h := sha256.New()
		for b := range full {
			h.Write(b)
			free <- b[:cap(b)]
		}
		fullDone <- sum(h)
	}()

	var err error
	part := sha256.New()
	var inPart int64
	for off := int64(0); off < size && err == nil; {
		if err = ctx.Err(); err != nil {
			break
		}
		buf := <-free
		n := min(int64(len(buf)), size-off, partSize-inPart)
		var got int
		got, err = r.ReadAt(buf[:n], off)
		if int64(got) == n {
			err = nil // ReadAt may return io.EOF with the last full chunk
		} else if err == nil || err == io.EOF {
			err = fmt.Errorf("hash %q: read %d of %d bytes at offset %d: %w", key, got, n, off, ErrShortInput)
		} else {
			err = fmt.Errorf("hash %q: read at offset %d: %w", key, off, err)
		}
		if err != nil {
			free <- buf
			break
		}
		b := buf[:n]
		if parts != nil {
			part.Write(b)
		}
		full <- b
		off += n
		inPart += n
		if parts != nil && (inPart == partSize || off == size) {
			parts = append(parts, sum(part))
			part.Reset()
			inPart = 0
		}
	}
	close(full)
	whole := <-fullDone
	if err != nil {
		return digest{}, nil, err
	}
	return whole, parts, nil
}

func sum(h hash.Hash) (d digest) {
	h.Sum(d[:0])
	return d
}

func hexOf(d digest) string { return hex.EncodeToString(d[:]) }
func b64Of(d digest) string { return base64.StdEncoding.EncodeToString(d[:]) }

// compositeChecksum is S3's checksum of a multipart upload:
// base64(sha256(part digests concatenated)) + "-" + part count.
func compositeChecksum(parts []digest) string {
	h := sha256.New()
	for i := range parts {
		h.Write(parts[i][:])
	}
	return fmt.Sprintf("%s-%d", b64Of(sum(h)), len(parts))
}

// validHexSHA256 reports whether s is 64 lowercase hex digits.
func validHexSHA256(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func checkExpected(key string, got digest, want string) error {
	if want == "" {
		return nil
	}
	if !validHexSHA256(want) {
		return fmt.Errorf("put %q: expected sha256 %q is not 64 lowercase hex digits: %w", key, want, ErrChecksumMismatch)
	}
	if hexOf(got) != want {
		return fmt.Errorf("put %q: input sha256 %s, expected %s: %w", key, hexOf(got), want, ErrChecksumMismatch)
	}
	return nil
}

// digestOf decodes a caller's expected digest (lowercase hex); ok is false when it is empty
// or malformed, in which case the input is hashed and checkExpected reports the problem.
func digestOf(want string) (d digest, ok bool) {
	if !validHexSHA256(want) {
		return d, false
	}
	if _, err := hex.Decode(d[:], []byte(want)); err != nil {
		return d, false
	}
	return d, true
}

// SHA256Hex is the lowercase hex SHA-256 of b, as stubs and object metadata record it.
func SHA256Hex(b []byte) string {
	d := sha256.Sum256(b)
	return hexOf(d)
}

// randomHex returns n random bytes in hex (probe object names).
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails on Linux
	return hex.EncodeToString(b)
}
