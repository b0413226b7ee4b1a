package target

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"time"

	"ulp/livepatch/abi"
	"ulp/livepatch/ledger"
	"ulp/livepatch/procfs"
)

// maxAttempts bounds the retries of one seqlock read.
const maxAttempts = 200

// staleAfter is the attempt after which an odd sequence counter may be
// taken for the leftover of a dead writer (see staleWriter).
const staleAfter = 20

// staleWriter reports whether an odd sequence counter that persists can
// only have been left by a writer that died mid-write: the writers are the
// agent that holds the process (its tracer) and, for short ring appends,
// the runtime itself. When the process has no tracer, or the tracer is this
// very process (which is not writing while it reads), nobody will finish
// the write; the reader then reads the bytes as they are and relies on the
// ledger's checksum to reject a torn one.
func (p *Process) staleWriter() bool {
	st, err := procfs.ReadStatus(p.PID)
	return err == nil && (st.TracerPid == 0 || st.TracerPid == os.Getpid())
}

// settled reports whether a seqlock read may proceed with counter seq.
func (p *Process) settled(seq uint64, attempt int) bool {
	return seq%2 == 0 || attempt >= staleAfter && p.staleWriter()
}

// MaxLedger bounds the ledger bytes read from a process, whose memory is
// not trusted (decoding allocates about four times as much); the agent
// never writes a larger ledger (a ledger of a hundred patches takes a few
// KiB).
const MaxLedger = 4 << 20

func sleep(ctx context.Context, attempt int) error {
	d := time.Duration(min(attempt, 50)) * 100 * time.Microsecond
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// LedgerArea is the ledger memory the runtime provides, as published in
// the ABI block.
type LedgerArea struct {
	Addr uint64 // address of the ledger bytes
	Cap  uint64 // their capacity
	Len  uint64 // bytes in use
	Seq  uint64 // the seqlock counter (even: stable)
}

func (p *Process) readLedgerArea() (LedgerArea, error) {
	b := make([]byte, abi.OffLoadedAt-abi.OffLedger)
	if err := procfs.ReadMem(p.PID, p.ABI+abi.OffLedger, b); err != nil {
		return LedgerArea{}, err
	}
	le := binary.LittleEndian
	return LedgerArea{
		Addr: le.Uint64(b), // at abi.OffLedger
		Cap:  le.Uint64(b[abi.OffLedgerCap-abi.OffLedger:]),
		Len:  le.Uint64(b[abi.OffLedgerLen-abi.OffLedger:]),
		Seq:  le.Uint64(b[abi.OffLedgerSeq-abi.OffLedger:]),
	}, nil
}

// ReadLedgerBytes returns the encoded ledger of the process and the area it
// was read from, consistent under the ledger seqlock: the counter was even
// and unchanged around the read. It retries while a writer is active and
// fails with ErrBusy after a bounded number of attempts. A counter left odd
// by a writer that died is detected (see staleWriter): the bytes are then
// returned as they are, with the odd counter in the area, and Decode's
// checksum tells whether they are whole.
func (p *Process) ReadLedgerBytes(ctx context.Context) ([]byte, LedgerArea, error) {
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if attempt > 0 {
			if err := waitRetry(ctx, attempt); err != nil {
				return nil, LedgerArea{}, err
			}
		}
		a, err := p.readLedgerArea()
		if err != nil {
			return nil, a, err
		}
		if !p.settled(a.Seq, attempt) {
			continue
		}
		if a.Len > a.Cap || a.Len > MaxLedger {
			// Torn or corrupt: only trusted if the counter did not move.
			if b, err := p.readLedgerArea(); err != nil || b.Seq != a.Seq {
				continue
			}
			return nil, a, fmt.Errorf("pid %d: %w: ledger length %d, capacity %d", p.PID, ErrFormat, a.Len, a.Cap)
		}
		buf := make([]byte, a.Len)
		if err := procfs.ReadMem(p.PID, a.Addr, buf); err != nil {
			return nil, a, err
		}
		var seq [8]byte
		if err := procfs.ReadMem(p.PID, p.ABI+abi.OffLedgerSeq, seq[:]); err != nil {
			return nil, a, err
		}
		if binary.LittleEndian.Uint64(seq[:]) == a.Seq {
			return buf, a, nil
		}
	}
	return nil, LedgerArea{}, fmt.Errorf("pid %d: read ledger: %w", p.PID, ErrBusy)
}

// ReadLedger reads and decodes the process's ledger (see ReadLedgerBytes).
func (p *Process) ReadLedger(ctx context.Context) (*ledger.Ledger, error) {
	b, _, err := p.ReadLedgerBytes(ctx)
	if err != nil {
		return nil, err
	}
	l, err := ledger.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("pid %d: %w: %w", p.PID, ErrFormat, err)
	}
	return l, nil
}

// ReadRing returns the lines of the runtime's message ring, oldest first,
// read consistently under the ring's seqlock. When the ring has wrapped,
// the oldest, partly overwritten line is dropped.
func (p *Process) ReadRing(ctx context.Context) ([]string, error) {
	b := make([]byte, abi.RingStructSize)
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if attempt > 0 {
			if err := waitRetry(ctx, attempt); err != nil {
				return nil, err
			}
		}
		if err := procfs.ReadMem(p.PID, p.ABI+abi.OffRing, b); err != nil {
			return nil, err
		}
		var seq [8]byte
		if err := procfs.ReadMem(p.PID, p.ABI+abi.OffRingSeq, seq[:]); err != nil {
			return nil, err
		}
		s0 := binary.LittleEndian.Uint64(b)
		if !p.settled(s0, attempt) || binary.LittleEndian.Uint64(seq[:]) != s0 {
			continue
		}
		var r abi.Ring
		r.Seq, r.Head = s0, binary.LittleEndian.Uint64(b[8:])
		copy(r.Buf[:], b[16:])
		return ringLines(&r), nil
	}
	return nil, fmt.Errorf("pid %d: read messages: %w", p.PID, ErrBusy)
}

// ringLines splits the ring's text into lines, dropping a first line cut
// by wrap-around and a last line still without its newline.
func ringLines(r *abi.Ring) []string {
	text := r.Text()
	if r.Head > abi.RingSize {
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			text = text[i+1:]
		} else {
			text = ""
		}
	}
	if i := strings.LastIndexByte(text, '\n'); i >= 0 {
		text = text[:i]
	} else {
		return nil
	}
	return strings.Split(text, "\n")
}

// Writer writes the memory of a process that the agent holds;
// *ptrace.Process is one. The writes below follow the seqlock protocol the
// reads above expect; the agent writes only while it holds the process and
// no call runs, so the runtime does not write at the same time.
type Writer interface {
	Write(addr uint64, b []byte) error
}

// LedgerWriter prepares the store of the encoded ledger enc under the
// ledger seqlock (reading the area now) and returns the function that
// performs it with w: four writes (counter odd, bytes, length, counter
// even).
func (p *Process) LedgerWriter(ctx context.Context, w Writer, enc []byte) (func() error, error) {
	_, area, err := p.ReadLedgerBytes(ctx)
	if err != nil {
		return nil, err
	}
	if uint64(len(enc)) > area.Cap {
		return nil, fmt.Errorf("ledger of %d bytes does not fit %d", len(enc), area.Cap)
	}
	le := binary.LittleEndian
	seq := area.Seq + 1 // odd: writing
	if area.Seq&1 == 1 {
		seq = area.Seq + 2 // a writer died mid-write: stay odd, move on
	}
	odd, even := le.AppendUint64(nil, seq), le.AppendUint64(nil, seq+1)
	n := le.AppendUint64(nil, uint64(len(enc)))
	return func() error {
		if err := w.Write(p.ABI+abi.OffLedgerSeq, odd); err != nil {
			return err
		}
		if err := w.Write(area.Addr, enc); err != nil {
			return err
		}
		if err := w.Write(p.ABI+abi.OffLedgerLen, n); err != nil {
			return err
		}
		return w.Write(p.ABI+abi.OffLedgerSeq, even)
	}, nil
}

// AppendRing writes one line to the runtime's message ring with w,
// following the ring's seqlock protocol.
func (p *Process) AppendRing(w Writer, line string) error {
	var hdr [16]byte
	if err := procfs.ReadMem(p.PID, p.ABI+abi.OffRingSeq, hdr[:]); err != nil {
		return err
	}
	le := binary.LittleEndian
	seq, head := le.Uint64(hdr[0:]), le.Uint64(hdr[8:])
	if seq&1 == 0 {
		seq++
	} else {
		seq += 2
	}
	if err := w.Write(p.ABI+abi.OffRingSeq, le.AppendUint64(nil, seq)); err != nil {
		return err
	}
	text := []byte(line + "\n")
	if len(text) > abi.RingSize {
		text = text[len(text)-abi.RingSize:]
	}
	for len(text) > 0 {
		off := head % abi.RingSize
		n := min(uint64(len(text)), abi.RingSize-off)
		if err := w.Write(p.ABI+abi.OffRingBuf+off, text[:n]); err != nil {
			return err
		}
		text, head = text[n:], head+n
	}
	if err := w.Write(p.ABI+abi.OffRingHead, le.AppendUint64(nil, head)); err != nil {
		return err
	}
	return w.Write(p.ABI+abi.OffRingSeq, le.AppendUint64(nil, seq+1))
}
