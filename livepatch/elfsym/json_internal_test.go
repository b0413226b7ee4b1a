package elfsym

import (
	"errors"
	"strings"
	"testing"
)

func TestReadJSON_TooLarge(t *testing.T) {
	const limit = 1 << 20
	r := &repeatReader{prefix: []byte(`{"schema": "`), fill: 'a'}
	obj, err := readJSON(r, limit)
	if obj != nil || !errors.Is(err, ErrInvalidDump) || !strings.Contains(err.Error(), "larger than 1048576 bytes") {
		t.Fatalf("readJSON(endless) = %v, %v", obj, err)
	}
	if r.n > 2*limit {
		t.Errorf("read %d bytes for a limit of %d", r.n, limit)
	}
	// The same dump under the limit is only invalid, not too large.
	_, err = readJSON(strings.NewReader(`{"schema": "x"}`), limit)
	if err == nil || strings.Contains(err.Error(), "larger than") {
		t.Errorf("small dump: %v", err)
	}
}

// repeatReader yields prefix, then fill forever.
type repeatReader struct {
	prefix []byte
	fill   byte
	n      int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := copy(p, r.prefix)
	r.prefix = r.prefix[n:]
	for i := n; i < len(p); i++ {
		p[i] = r.fill
	}
	r.n += len(p)
	return len(p), nil
}
