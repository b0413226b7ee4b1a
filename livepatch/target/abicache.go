package target

import "sync"

// abiOffsets caches the offset of ulp_abi in a runtime file, by the file's
// build-id: reading the runtime's symbols costs far more than everything
// else Open does, and a whole-host trigger opens hundreds of processes that
// all map the same runtime. A build-id names the file's contents, so the
// offset it maps to never changes.
var abiOffsets sync.Map // string(build-id) → uint64

// cachedABIOffset returns the cached offset of ulp_abi for a runtime with
// build-id id.
func cachedABIOffset(id []byte) (uint64, bool) {
	if len(id) == 0 {
		return 0, false
	}
	v, ok := abiOffsets.Load(string(id))
	if !ok {
		return 0, false
	}
	return v.(uint64), true
}

func cacheABIOffset(id []byte, off uint64) {
	if len(id) != 0 {
		abiOffsets.Store(string(id), off)
	}
}
