package trigger

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"ulp/livepatch/abi"
	"ulp/livepatch/ptrace"
)

// ReasonSetPatchable is the reason recorded by SetPatchable(false).
const ReasonSetPatchable = "disabled by ulp set_patchable"

// ErrSticky: the runtime disabled itself (user opt-out or an internal
// problem); set_patchable cannot change that.
var ErrSticky = errors.New("runtime state cannot be changed")

// SetPatchable enables or disables patching of process pid: it writes
// ulp_abi.state (READY or RUNTIME_OFF) and its reason while it holds the
// process seized, so that no trigger runs at the same time. Nothing is
// stopped. It returns the state before the change.
func SetPatchable(ctx context.Context, pid int, enable bool, o Options) (abi.State, error) {
	o = o.withDefaults()
	tp, err := openStable(pid)
	if err != nil {
		return 0, err
	}
	p, err := ptrace.Seize(ctx, pid, o.Log)
	if err != nil {
		return 0, err
	}
	defer p.Detach()
	blk, err := tp.ReadABI()
	if err != nil {
		return 0, err
	}
	if blk.State != abi.StateReady && blk.State != abi.StateRuntimeOff {
		return blk.State, fmt.Errorf("%w: %v (%s)", ErrSticky, blk.State, abi.String(blk.Reason[:]))
	}
	state, reason, line := abi.StateReady, "", "ulp: patching enabled by set_patchable"
	if !enable {
		state, reason, line = abi.StateRuntimeOff, ReasonSetPatchable, "ulp: patching "+ReasonSetPatchable
	}
	if blk.State == state {
		return blk.State, nil
	}
	// The reason first, then the state: a reader seeing the new state sees
	// its reason.
	r := make([]byte, abi.ReasonMax)
	copy(r, reason)
	if err := p.Write(tp.ABI+abi.OffReason, r); err != nil {
		return blk.State, err
	}
	if err := p.Write(tp.ABI+abi.OffState, binary.LittleEndian.AppendUint32(nil, uint32(state))); err != nil {
		return blk.State, err
	}
	if err := tp.AppendRing(p, line); err != nil {
		o.Log.Warn("message ring", "err", err)
	}
	return blk.State, p.Detach()
}
