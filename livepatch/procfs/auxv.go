package procfs

import (
	"encoding/binary"
	"fmt"
)

// Auxiliary vector keys the agent uses (AT_* in linux/auxvec.h).
const (
	AtNull        = 0  // AT_NULL, the end of the vector
	AtPhdr        = 3  // AT_PHDR, address of the executable's program headers
	AtPhent       = 4  // AT_PHENT
	AtPhnum       = 5  // AT_PHNUM
	AtBase        = 7  // AT_BASE, load address of the dynamic loader
	AtEntry       = 9  // AT_ENTRY, the executable's entry point
	AtSysinfoEhdr = 33 // AT_SYSINFO_EHDR, the vDSO
)

// ParseAuxv parses /proc/PID/auxv (pairs of native 64-bit words, ending at
// AT_NULL) into a map from key to value.
func ParseAuxv(b []byte) (map[uint64]uint64, error) {
	if len(b)%16 != 0 {
		return nil, fmt.Errorf("%w: auxv of %d bytes", ErrFormat, len(b))
	}
	out := make(map[uint64]uint64, len(b)/16)
	for i := 0; i+16 <= len(b); i += 16 {
		k, v := binary.LittleEndian.Uint64(b[i:]), binary.LittleEndian.Uint64(b[i+8:])
		if k == AtNull {
			return out, nil
		}
		out[k] = v
	}
	return nil, fmt.Errorf("%w: auxv without AT_NULL", ErrFormat)
}

// Auxv reads and parses /proc/pid/auxv.
func Auxv(pid int) (map[uint64]uint64, error) {
	b, err := readFile(pid, "auxv")
	if err != nil {
		return nil, err
	}
	a, err := ParseAuxv(b)
	if err != nil {
		return nil, fmt.Errorf("pid %d: %w", pid, err)
	}
	return a, nil
}
