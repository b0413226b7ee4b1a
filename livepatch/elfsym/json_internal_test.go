package elfsym

import (
	"encoding/hex"
	"errors"
	"slices"
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

// TestReadJSON_Libpulp reads a dump in the layout of SUSE libpulp's `ulp
// extract` (research notes: libpulp.md §3.5): its symbols, typed from
// st_info, without the undefined ones; every function taken for padded.
func TestReadJSON_Libpulp(t *testing.T) {
	dump := `{"library":{"name":"libx.so.1","buildid":"2cc03805422a5688f73441727a2a67dc73fc8ada","symbols":[
	{"name":"other","offset":4398,"size":6,"st_info":18,"st_other":0},
	{"name":"counter","offset":16400,"size":4,"st_info":17,"st_other":0},
	{"name":"hidden_helper","offset":4300,"size":9,"st_info":2,"st_other":2},
	{"name":"__gmon_start__","offset":0,"size":0,"st_info":32,"st_other":0},
	{"name":"crtstuff.c","offset":0,"size":0,"st_info":4,"st_other":0}]}}`
	obj, err := ReadJSON(strings.NewReader(dump))
	if err != nil {
		t.Fatal(err)
	}
	want := []Symbol{
		{Name: "hidden_helper", Offset: 4300, Size: 9, Type: TypeFunc, Bind: BindLocal, Pad: true},
		{Name: "other", Offset: 4398, Size: 6, Type: TypeFunc, Bind: BindGlobal, Pad: true},
		{Name: "counter", Offset: 16400, Size: 4, Type: TypeObject, Bind: BindGlobal},
	}
	if obj.Name != "libx.so.1" || hex.EncodeToString(obj.BuildID) != "2cc03805422a5688f73441727a2a67dc73fc8ada" || !slices.Equal(obj.Symbols, want) {
		t.Errorf("object %+v\nwant symbols %+v", obj, want)
	}
	for _, bad := range []string{
		`{"library":{"name":"../x","buildid":"00","symbols":[]}}`,
		`{"library":{"name":"x","buildid":"zz","symbols":[]}}`,
		`{"library":{"name":"x","buildid":"00","symbols":[{"name":"f","offset":-5,"size":1,"st_info":18,"st_other":0}]}}`,
		`{"library":{"name":"x","buildid":"00","extra":1,"symbols":[]}}`,
	} {
		if _, err := ReadJSON(strings.NewReader(bad)); !errors.Is(err, ErrInvalidDump) {
			t.Errorf("ReadJSON(%s) = %v, want ErrInvalidDump", bad, err)
		}
	}
}
