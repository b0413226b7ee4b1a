package abi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Symbol is the name of the one data symbol the runtime exports.
const Symbol = "ulp_abi"

// Identification of the block and of a request.
const (
	Magic        uint32 = 0x31504c55       // ULP_ABI_MAGIC, the bytes "ULP1"
	Version      uint32 = 1                // ULP_ABI_VERSION
	RequestMagic uint64 = 0x5145525f504c55 // ULP_REQUEST_MAGIC, the bytes "ULP_REQ"
)

// Sizes of the fixed arrays.
const (
	MsgMax           = 256   // ULP_MSG_MAX
	ReasonMax        = 256   // ULP_REASON_MAX
	VersionMax       = 32    // ULP_VERSION_MAX
	PathMax          = 4096  // ULP_PATH_MAX
	NameMax          = 256   // ULP_NAME_MAX
	RingSize         = 8192  // ULP_RING_SIZE
	StaticLedgerSize = 16384 // ULP_STATIC_LEDGER_SIZE
)

// State is ulp_abi.state: whether the runtime accepts patches.
type State uint32

// The runtime states.
const (
	StateReady      State = 0 // patching enabled
	StateUserOff    State = 1 // LIBPULP_DISABLE_ON_PATH/USERS/GROUPS matched
	StateRuntimeOff State = 2 // `ulp set_patchable -p PID disable`
	StateBroken     State = 3 // an internal problem; Block.Reason says which
)

// String describes the state in words.
func (s State) String() string {
	return enumName([]string{"ready", "disabled by user", "disabled at run time", "broken"}, s, "state")
}

// CallState is ulp_call.state.
type CallState uint32

// The states of the call slot.
const (
	CallIdle    CallState = 0
	CallRunning CallState = 1 // a hijacked thread is inside the runtime
	CallDone    CallState = 2 // Result, Out and Msg are final for Call.ID
)

// Op is ulp_request.op.
type Op uint32

// The operations a hijacked thread performs (see ulp_abi.h for out[]).
const (
	OpPing       Op = 0
	OpLoad       Op = 1
	OpGrowLedger Op = 2
	OpWrite      Op = 3 // atomic code stores while the other threads run (Write)
)

// String names the operation.
func (o Op) String() string {
	return enumName([]string{"ping", "load", "grow-ledger", "write"}, o, "op")
}

// Request.Flags.
const (
	// ReqNotify makes the thread send itself a signal without effect once
	// the result is published, so that a tracer waiting for it wakes on the
	// stop (ULP_REQ_NOTIFY).
	ReqNotify uint32 = 1
)

// WritesMax is the most writes of one OpWrite request (ULP_WRITES_MAX).
const WritesMax = 64

// WriteSize is sizeof(struct ulp_write).
const WriteSize = 48

// Write is struct ulp_write: one store of OpWrite.
type Write struct {
	Addr uint64
	Len  uint32 // 2 or 8
	Prot uint32 // PROT_* given back to the mapping after the store
	Old  [8]byte
	New  [8]byte
	// MapStart and MapEnd are the mapping holding the bytes, whose
	// protection the runtime changes as a whole (a page's would split it).
	MapStart, MapEnd uint64
}

// SetWrites stores ws as the writes of an OpWrite request (Arg[0] and Path).
func (r *Request) SetWrites(ws []Write) error {
	if len(ws) == 0 || len(ws) > WritesMax {
		return fmt.Errorf("abi: %d writes, want 1 to %d", len(ws), WritesMax)
	}
	le := binary.LittleEndian
	clear(r.Path[:])
	for i, w := range ws {
		b := r.Path[i*WriteSize:]
		le.PutUint64(b, w.Addr)
		le.PutUint32(b[8:], w.Len)
		le.PutUint32(b[12:], w.Prot)
		copy(b[16:24], w.Old[:])
		copy(b[24:32], w.New[:])
		le.PutUint64(b[32:], w.MapStart)
		le.PutUint64(b[40:], w.MapEnd)
	}
	r.Arg[0] = uint64(len(ws))
	return nil
}

// Result is ulp_call.result; 0 is success.
type Result int32

// The results of a call.
const (
	OK        Result = 0
	EAgain    Result = 1 // the thread is inside malloc or the dynamic loader: retry
	EDisabled Result = 2 // state is not READY
	ENoTarget Result = 3 // the target object is not loaded
	EDlopen   Result = 4 // Call.Msg holds dlerror()
	ENoMem    Result = 5
	EInval    Result = 6 // a malformed request
	EProt     Result = 7 // OpWrite: the code could not be made writable
	EChanged  Result = 8 // OpWrite: the bytes to replace were not the expected ones
)

// String describes the result in words.
func (r Result) String() string {
	return enumName([]string{"ok", "busy, try again", "patching disabled", "target not loaded",
		"dlopen failed", "out of memory", "malformed request", "code not writable", "code changed"}, r, "result")
}

// enumName returns names[v], or kind(v) for a value past the table (a newer
// runtime's, or a corrupt one).
func enumName[T ~uint32 | ~int32](names []string, v T, kind string) string {
	if v >= 0 && int64(v) < int64(len(names)) {
		return names[v]
	}
	return fmt.Sprintf("%s(%d)", kind, int64(v))
}

// Indices into Request.GPR, in the entry stub's pop order.
const (
	R15 = iota
	R14
	R13
	R12
	RBP
	RBX
	R11
	R10
	R9
	R8
	RAX
	RCX
	RDX
	RSI
	RDI
	NumGPR
)

// Indices into Request.Iret, the iretq frame.
const (
	IretRIP = iota
	IretCS
	IretRFLAGS
	IretRSP
	IretSS
	NumIret
)

// Byte offsets inside struct ulp_abi, for reading or writing single fields
// of a live block.
const (
	OffMagic       = 0
	OffVersion     = 4
	OffSize        = 8
	OffState       = 12
	OffEntry       = 16
	OffLedger      = 24
	OffLedgerCap   = 32
	OffLedgerLen   = 40
	OffLedgerSeq   = 48
	OffLoadedAt    = 56
	OffCall        = 64
	OffCallID      = OffCall + 0
	OffCallState   = OffCall + 8
	OffCallResult  = OffCall + 12
	OffCallOut     = OffCall + 16
	OffCallMsg     = OffCall + 48
	OffReason      = OffCall + CallSize
	OffVersionStr  = OffReason + ReasonMax
	OffRing        = OffVersionStr + VersionMax
	OffRingSeq     = OffRing + 0
	OffRingHead    = OffRing + 8
	OffRingBuf     = OffRing + 16
	CallSize       = 48 + MsgMax
	RingStructSize = 16 + RingSize
	BlockSize      = OffRing + RingStructSize // sizeof(struct ulp_abi)
)

// Byte offsets inside struct ulp_request.
const (
	ReqOffMagic  = 0
	ReqOffID     = 8
	ReqOffOp     = 16
	ReqOffArg    = 24
	ReqOffPath   = 56
	ReqOffTarget = ReqOffPath + PathMax
	ReqOffGPR    = ReqOffTarget + NameMax
	ReqOffIret   = ReqOffGPR + 8*NumGPR
	RequestSize  = ReqOffIret + 8*NumIret // sizeof(struct ulp_request)
)

// Call is struct ulp_call.
type Call struct {
	ID     uint64
	State  CallState
	Result Result
	Out    [4]uint64
	Msg    [MsgMax]byte
}

// Ring is struct ulp_ring, the message ring.
type Ring struct {
	Seq  uint64
	Head uint64
	Buf  [RingSize]byte
}

// Block is struct ulp_abi, the runtime's exported block.
type Block struct {
	Magic      uint32
	Version    uint32
	Size       uint32
	State      State
	Entry      uint64
	Ledger     uint64
	LedgerCap  uint64
	LedgerLen  uint64
	LedgerSeq  uint64
	LoadedAt   uint64
	Call       Call
	Reason     [ReasonMax]byte
	VersionStr [VersionMax]byte
	Ring       Ring
}

// Request is struct ulp_request.
type Request struct {
	Magic  uint64
	ID     uint64
	Op     Op
	Flags  uint32 // ReqNotify
	Arg    [4]uint64
	Path   [PathMax]byte
	Target [NameMax]byte
	GPR    [NumGPR]uint64
	Iret   [NumIret]uint64
}

// Errors returned by the decoders.
var (
	// ErrShort means fewer bytes than the structure needs.
	ErrShort = errors.New("abi: short buffer")
	// ErrMismatch means the block's magic, version or size is not this
	// package's: the process runs a runtime this agent does not understand,
	// or the address is wrong.
	ErrMismatch = errors.New("abi: runtime block mismatch")
	// ErrTooLong means a string does not fit its field with its NUL.
	ErrTooLong = errors.New("abi: string too long")
)

// DecodeBlock decodes and validates a struct ulp_abi read from a target.
// It checks magic, version and size before anything else is trusted.
func DecodeBlock(b []byte) (*Block, error) {
	if len(b) < BlockSize {
		return nil, fmt.Errorf("%w: %d bytes, block needs %d", ErrShort, len(b), BlockSize)
	}
	le := binary.LittleEndian
	blk := &Block{
		Magic:     le.Uint32(b[OffMagic:]),
		Version:   le.Uint32(b[OffVersion:]),
		Size:      le.Uint32(b[OffSize:]),
		State:     State(le.Uint32(b[OffState:])),
		Entry:     le.Uint64(b[OffEntry:]),
		Ledger:    le.Uint64(b[OffLedger:]),
		LedgerCap: le.Uint64(b[OffLedgerCap:]),
		LedgerLen: le.Uint64(b[OffLedgerLen:]),
		LedgerSeq: le.Uint64(b[OffLedgerSeq:]),
		LoadedAt:  le.Uint64(b[OffLoadedAt:]),
		Call:      decodeCall(b[OffCall:]),
	}
	copy(blk.Reason[:], b[OffReason:])
	copy(blk.VersionStr[:], b[OffVersionStr:])
	blk.Ring.Seq = le.Uint64(b[OffRingSeq:])
	blk.Ring.Head = le.Uint64(b[OffRingHead:])
	copy(blk.Ring.Buf[:], b[OffRingBuf:])
	switch {
	case blk.Magic != Magic:
		return nil, fmt.Errorf("%w: magic %#x, want %#x", ErrMismatch, blk.Magic, Magic)
	case blk.Version != Version:
		return nil, fmt.Errorf("%w: version %d, want %d", ErrMismatch, blk.Version, Version)
	case blk.Size != BlockSize:
		return nil, fmt.Errorf("%w: size %d, want %d", ErrMismatch, blk.Size, BlockSize)
	}
	return blk, nil
}

// DecodeCall decodes a struct ulp_call (CallSize bytes).
func DecodeCall(b []byte) (*Call, error) {
	if len(b) < CallSize {
		return nil, fmt.Errorf("%w: %d bytes, call needs %d", ErrShort, len(b), CallSize)
	}
	c := decodeCall(b)
	return &c, nil
}

// decodeCall decodes a struct ulp_call from at least CallSize bytes, field
// by field: the agent decodes a block or a call many times for each
// process, and encoding/binary's reflection took most of the time of an
// 8 KiB block (its byte arrays element by element).
func decodeCall(b []byte) Call {
	le := binary.LittleEndian
	c := Call{
		ID:     le.Uint64(b[OffCallID-OffCall:]),
		State:  CallState(le.Uint32(b[OffCallState-OffCall:])),
		Result: Result(le.Uint32(b[OffCallResult-OffCall:])),
	}
	for i := range c.Out {
		c.Out[i] = le.Uint64(b[OffCallOut-OffCall+8*i:])
	}
	copy(c.Msg[:], b[OffCallMsg-OffCall:CallSize])
	return c
}

// NewRequest returns a request with its magic, id and op set.
func NewRequest(id uint64, op Op) *Request {
	return &Request{Magic: RequestMagic, ID: id, Op: op}
}

// SetPath stores the container path (ULP_OP_LOAD).
func (r *Request) SetPath(p string) error { return setCString(r.Path[:], p) }

// SetTarget stores the target basename, "" for the main program (ULP_OP_LOAD).
func (r *Request) SetTarget(name string) error { return setCString(r.Target[:], name) }

// Marshal returns the request's RequestSize bytes as the target sees them.
func (r *Request) Marshal() []byte {
	b := make([]byte, RequestSize)
	le := binary.LittleEndian
	le.PutUint64(b[ReqOffMagic:], r.Magic)
	le.PutUint64(b[ReqOffID:], r.ID)
	le.PutUint32(b[ReqOffOp:], uint32(r.Op))
	le.PutUint32(b[ReqOffOp+4:], r.Flags)
	for i, v := range r.Arg {
		le.PutUint64(b[ReqOffArg+8*i:], v)
	}
	copy(b[ReqOffPath:], r.Path[:])
	copy(b[ReqOffTarget:], r.Target[:])
	for i, v := range r.GPR {
		le.PutUint64(b[ReqOffGPR+8*i:], v)
	}
	for i, v := range r.Iret {
		le.PutUint64(b[ReqOffIret+8*i:], v)
	}
	return b
}

// String returns the NUL-terminated text of a fixed array (Msg, Reason,
// VersionStr); an array with no NUL yields all of it.
func String(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// Text returns the ring's retained text, oldest byte first: the last
// min(Head, RingSize) bytes written. The first line may be cut.
func (r *Ring) Text() string {
	n := r.Head
	if n > RingSize {
		n = RingSize
	}
	start := (r.Head - n) % RingSize
	out := make([]byte, 0, n)
	out = append(out, r.Buf[start:min(start+n, RingSize)]...)
	if rest := int(n) - len(out); rest > 0 {
		out = append(out, r.Buf[:rest]...)
	}
	return string(out)
}

func setCString(dst []byte, s string) error {
	if len(s) >= len(dst) {
		return fmt.Errorf("%w: %d bytes, field holds %d", ErrTooLong, len(s), len(dst)-1)
	}
	for i := range dst {
		dst[i] = 0
	}
	copy(dst, s)
	return nil
}
