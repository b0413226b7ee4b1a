package abi

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"ulp/internal/testenv"
)

// TestProbe compiles testdata/probe.c against libpulp/ulp_abi.h and checks
// that every constant, size and offset it prints equals the Go mirror.
func TestProbe(t *testing.T) {
	testenv.Require(t, testenv.CC)
	exe := filepath.Join(t.TempDir(), "probe")
	inc := filepath.Join(testenv.ModuleRoot(), "libpulp")
	testenv.CompileC(t, exe, []string{"-I", inc, "-Wall", "-Werror"}, filepath.Join("testdata", "probe.c"))
	out, err := exec.CommandContext(t.Context(), exe).Output()
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	got := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		i := strings.LastIndexByte(sc.Text(), ' ')
		v, err := strconv.ParseInt(sc.Text()[i+1:], 10, 64)
		if i < 0 || err != nil {
			t.Fatalf("bad probe line %q", sc.Text())
		}
		got[sc.Text()[:i]] = v
	}
	want := map[string]int64{
		"ULP_ABI_MAGIC":              int64(Magic),
		"ULP_ABI_VERSION":            int64(Version),
		"ULP_REQUEST_MAGIC":          int64(RequestMagic),
		"ULP_STATE_READY":            int64(StateReady),
		"ULP_STATE_USER_OFF":         int64(StateUserOff),
		"ULP_STATE_RUNTIME_OFF":      int64(StateRuntimeOff),
		"ULP_STATE_BROKEN":           int64(StateBroken),
		"ULP_CALL_IDLE":              int64(CallIdle),
		"ULP_CALL_RUNNING":           int64(CallRunning),
		"ULP_CALL_DONE":              int64(CallDone),
		"ULP_OP_PING":                int64(OpPing),
		"ULP_OP_LOAD":                int64(OpLoad),
		"ULP_OP_GROW_LEDGER":         int64(OpGrowLedger),
		"ULP_OP_WRITE":               int64(OpWrite),
		"ULP_WRITES_MAX":             WritesMax,
		"ULP_REQ_NOTIFY":             int64(ReqNotify),
		"ULP_EPROT":                  int64(EProt),
		"ULP_ECHANGED":               int64(EChanged),
		"sizeof(struct ulp_write)":   WriteSize,
		"ulp_write.addr":             0,
		"ulp_write.len":              8,
		"ulp_write.prot":             12,
		"ulp_write.old":              16,
		"ulp_write.new_":             24,
		"ulp_write.map_start":        32,
		"ulp_write.map_end":          40,
		"ULP_OK":                     int64(OK),
		"ULP_EAGAIN":                 int64(EAgain),
		"ULP_EDISABLED":              int64(EDisabled),
		"ULP_ENOTARGET":              int64(ENoTarget),
		"ULP_EDLOPEN":                int64(EDlopen),
		"ULP_ENOMEM":                 int64(ENoMem),
		"ULP_EINVAL":                 int64(EInval),
		"ULP_MSG_MAX":                MsgMax,
		"ULP_REASON_MAX":             ReasonMax,
		"ULP_VERSION_MAX":            VersionMax,
		"ULP_PATH_MAX":               PathMax,
		"ULP_NAME_MAX":               NameMax,
		"ULP_RING_SIZE":              RingSize,
		"ULP_STATIC_LEDGER_SIZE":     StaticLedgerSize,
		"sizeof(struct ulp_abi)":     BlockSize,
		"sizeof(struct ulp_call)":    CallSize,
		"sizeof(struct ulp_ring)":    RingStructSize,
		"sizeof(struct ulp_request)": RequestSize,
		"ulp_abi.magic":              OffMagic,
		"ulp_abi.version":            OffVersion,
		"ulp_abi.size":               OffSize,
		"ulp_abi.state":              OffState,
		"ulp_abi.entry":              OffEntry,
		"ulp_abi.ledger":             OffLedger,
		"ulp_abi.ledger_cap":         OffLedgerCap,
		"ulp_abi.ledger_len":         OffLedgerLen,
		"ulp_abi.ledger_seq":         OffLedgerSeq,
		"ulp_abi.loaded_at":          OffLoadedAt,
		"ulp_abi.call":               OffCall,
		"ulp_abi.reason":             OffReason,
		"ulp_abi.version_str":        OffVersionStr,
		"ulp_abi.ring":               OffRing,
		"ulp_call.id":                OffCallID - OffCall,
		"ulp_call.state":             OffCallState - OffCall,
		"ulp_call.result":            OffCallResult - OffCall,
		"ulp_call.out":               OffCallOut - OffCall,
		"ulp_call.msg":               OffCallMsg - OffCall,
		"ulp_ring.seq":               OffRingSeq - OffRing,
		"ulp_ring.head":              OffRingHead - OffRing,
		"ulp_ring.buf":               OffRingBuf - OffRing,
		"ulp_request.magic":          ReqOffMagic,
		"ulp_request.id":             ReqOffID,
		"ulp_request.op":             ReqOffOp,
		"ulp_request.arg":            ReqOffArg,
		"ulp_request.path":           ReqOffPath,
		"ulp_request.target":         ReqOffTarget,
		"ulp_request.gpr":            ReqOffGPR,
		"ulp_request.iret":           ReqOffIret,
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("probe did not print %s", k)
			continue
		}
		if g != w {
			t.Errorf("%s: C says %d, Go says %d", k, g, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("probe printed %d values, the test checks %d", len(got), len(want))
	}
}

// TestGoLayout checks that the Go structs encode to the sizes the offset
// constants describe, so binary decoding and the constants agree.
func TestGoLayout(t *testing.T) {
	for _, c := range []struct {
		name string
		v    any
		want int
	}{
		{"Block", Block{}, BlockSize},
		{"Call", Call{}, CallSize},
		{"Ring", Ring{}, RingStructSize},
		{"Request", Request{}, RequestSize},
	} {
		if got := binary.Size(c.v); got != c.want {
			t.Errorf("binary.Size(%s) = %d, want %d", c.name, got, c.want)
		}
	}
}

func TestDecodeBlock(t *testing.T) {
	valid := func() []byte {
		b := make([]byte, BlockSize)
		binary.LittleEndian.PutUint32(b[OffMagic:], Magic)
		binary.LittleEndian.PutUint32(b[OffVersion:], Version)
		binary.LittleEndian.PutUint32(b[OffSize:], BlockSize)
		binary.LittleEndian.PutUint32(b[OffState:], uint32(StateUserOff))
		binary.LittleEndian.PutUint64(b[OffEntry:], 0x7f0000001000)
		binary.LittleEndian.PutUint32(b[OffCallState:], uint32(CallDone))
		binary.LittleEndian.PutUint32(b[OffCallResult:], uint32(EDlopen))
		binary.LittleEndian.PutUint64(b[OffCallOut+8:], 42)
		copy(b[OffCallMsg:], "no such file\x00")
		copy(b[OffReason:], "matched LIBPULP_DISABLE_ON_PATH\x00")
		copy(b[OffVersionStr:], "0.1.0\x00")
		return b
	}
	blk, err := DecodeBlock(valid())
	if err != nil {
		t.Fatal(err)
	}
	if blk.State != StateUserOff || blk.Entry != 0x7f0000001000 || blk.Call.State != CallDone ||
		blk.Call.Result != EDlopen || blk.Call.Out[1] != 42 || String(blk.Call.Msg[:]) != "no such file" ||
		String(blk.Reason[:]) != "matched LIBPULP_DISABLE_ON_PATH" || String(blk.VersionStr[:]) != "0.1.0" {
		t.Errorf("decoded %+v", blk)
	}
	for _, c := range []struct {
		name string
		mod  func([]byte) []byte
		want error
	}{
		{"short", func(b []byte) []byte { return b[:BlockSize-1] }, ErrShort},
		{"magic", func(b []byte) []byte { b[0] ^= 1; return b }, ErrMismatch},
		{"version", func(b []byte) []byte { b[OffVersion] = 9; return b }, ErrMismatch},
		{"size", func(b []byte) []byte { b[OffSize] ^= 8; return b }, ErrMismatch},
	} {
		t.Run(c.name, func(t *testing.T) {
			blk, err := DecodeBlock(c.mod(valid()))
			if !errors.Is(err, c.want) || blk != nil {
				t.Errorf("got %v, %v; want %v", blk, err, c.want)
			}
		})
	}
}

// TestDecode_AsEncodingBinary checks the field-by-field decoders against
// encoding/binary's reading of the same structures, on random bytes.
func TestDecode_AsEncodingBinary(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	for range 20 {
		b := make([]byte, BlockSize)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		binary.LittleEndian.PutUint32(b[OffMagic:], Magic)
		binary.LittleEndian.PutUint32(b[OffVersion:], Version)
		binary.LittleEndian.PutUint32(b[OffSize:], BlockSize)
		var want Block
		if _, err := binary.Decode(b, binary.LittleEndian, &want); err != nil {
			t.Fatal(err)
		}
		got, err := DecodeBlock(b)
		if err != nil || *got != want {
			t.Fatalf("DecodeBlock differs from encoding/binary (%v)", err)
		}
		c, err := DecodeCall(b[OffCall:])
		if err != nil || *c != want.Call {
			t.Fatalf("DecodeCall differs from encoding/binary (%v)", err)
		}
	}
	if _, err := DecodeCall(make([]byte, CallSize-1)); !errors.Is(err, ErrShort) {
		t.Errorf("short call: %v, want ErrShort", err)
	}
}

func TestRequestMarshal(t *testing.T) {
	r := NewRequest(7, OpLoad)
	if err := r.SetPath("/tmp/lp.so"); err != nil {
		t.Fatal(err)
	}
	if err := r.SetTarget("libc.so.6"); err != nil {
		t.Fatal(err)
	}
	r.GPR[RDI] = 0x1111
	r.Iret[IretRSP] = 0x2222
	b := r.Marshal()
	le := binary.LittleEndian
	if len(b) != RequestSize || le.Uint64(b) != RequestMagic || le.Uint64(b[ReqOffID:]) != 7 ||
		le.Uint32(b[ReqOffOp:]) != uint32(OpLoad) || String(b[ReqOffPath:]) != "/tmp/lp.so" ||
		String(b[ReqOffTarget:ReqOffGPR]) != "libc.so.6" || le.Uint64(b[ReqOffGPR+8*RDI:]) != 0x1111 ||
		le.Uint64(b[ReqOffIret+8*IretRSP:]) != 0x2222 {
		t.Errorf("bad encoding")
	}
	var back Request
	if _, err := binary.Decode(b, binary.LittleEndian, &back); err != nil || back != *r {
		t.Errorf("round trip: %v", err)
	}
	if err := r.SetTarget(strings.Repeat("x", NameMax)); !errors.Is(err, ErrTooLong) {
		t.Errorf("SetTarget(too long) = %v", err)
	}
}

func TestRingText(t *testing.T) {
	for _, c := range []struct {
		name   string
		writes []string
		want   string
	}{
		{"empty", nil, ""},
		{"some", []string{"a\n", "bc\n"}, "a\nbc\n"},
		{"wrapped", []string{strings.Repeat("x", RingSize-2) + "\n", "tail\n"}, strings.Repeat("x", RingSize-6) + "\n" + "tail\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var r Ring
			for _, w := range c.writes {
				for i := range len(w) {
					r.Buf[(r.Head+uint64(i))%RingSize] = w[i]
				}
				r.Head += uint64(len(w))
			}
			if got := r.Text(); got != c.want {
				t.Errorf("Text() = %q (len %d), want len %d", got[:min(len(got), 40)], len(got), len(c.want))
			}
		})
	}
}

// FuzzDecodeBlock: arbitrary bytes never panic, and an error means nil.
func FuzzDecodeBlock(f *testing.F) {
	f.Add(make([]byte, BlockSize))
	f.Add([]byte("ULP1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		blk, err := DecodeBlock(b)
		if (err != nil) == (blk != nil) {
			t.Fatalf("blk %v err %v", blk != nil, err)
		}
		if blk != nil {
			_ = blk.Ring.Text()
		}
	})
}
