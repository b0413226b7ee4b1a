package asm

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// MaxSize bounds the assembly read by Rewrite.
const MaxSize = 512 << 20

// Use is how an instruction uses a symbol.
type Use uint8

// Uses of a symbol.
const (
	UseCall Use = iota + 1 // call S
	UseJump                // jmp S, jcc S (a tail call)
	UseAddr                // leaq S(%rip), S@GOTPCREL(%rip): the symbol's address
	UseMem                 // any other S(%rip) operand: memory at the symbol
	UseTLS                 // S@gottpoff(%rip): the thread-pointer offset of a TLS variable
	UseGOT                 // S@GOTPCREL(%rip): a GOT entry holding the symbol's address
)

func (u Use) String() string {
	return [...]string{"?", "call", "jump", "address", "memory", "tls", "got"}[min(int(u), 6)]
}

// Action is what becomes of one reference.
type Action uint8

// Actions.
const (
	// Keep leaves the reference as it is: the symbol is in the patch, or
	// the dynamic linker binds it by name.
	Keep Action = iota + 1
	// Slot redirects it through the slot, which holds the symbol's address.
	Slot
	// GOTSlot redirects it through the slot, which holds the address of the
	// library's GOT entry for the symbol (its address or its TLS offset).
	GOTSlot
)

// Ref is the resolver's answer for one reference.
type Ref struct {
	Action Action
	Slot   string // the slot's symbol, for Slot and GOTSlot
}

// Options tune Rewrite.
type Options struct {
	// Resolve decides how an instruction's reference to sym (not a .L
	// label) is emitted.
	Resolve func(sym string, use Use) (Ref, error)
	// Roots are the functions the patch keeps; Root names the exported
	// table that refers to them.
	Roots []string
	Root  string
	// Unit numbers the assembly among those linked together.
	Unit int
}

// Result is the rewritten assembly.
type Result struct {
	Source []byte
	Slots  []string // the slots defined, sorted
	// Rewritten counts the instructions changed.
	Rewritten int
	// Unsupported are the instructions that could not be redirected, each
	// a *LineError; instruction N became a reference to
	// UnsupportedSymbol(Unit, N), so that linking fails if, and only if,
	// the patch keeps the function it is in.
	Unsupported []error
}

// UnsupportedSymbol names the undefined symbol that stands for the n-th
// unsupported instruction of unit.
func UnsupportedSymbol(unit, n int) string { return fmt.Sprintf("__ulp_unsupported_%d_%d", unit, n) }

// LineError is a problem at one line of the assembly.
type LineError struct {
	Line int
	Text string
	Err  error
}

func (e *LineError) Error() string {
	return fmt.Sprintf("assembly line %d: %v: %s", e.Line, e.Err, strings.TrimSpace(e.Text))
}

func (e *LineError) Unwrap() error { return e.Err }

// ErrUnsupported tags references Rewrite cannot redirect.
var ErrUnsupported = errors.New("unsupported reference")

var (
	symRe    = `[A-Za-z_.$][A-Za-z0-9_.$]*`
	ripRe    = regexp.MustCompile(`^(\*?)(` + symRe + `)(@[A-Za-z]+)?([+-][0-9]+)?\(%rip\)$`)
	branchRe = regexp.MustCompile(`^(` + symRe + `)(@PLT)?$`)
	regRe    = regexp.MustCompile(`%([a-z0-9]+)`)
	immSymRe = regexp.MustCompile(`^\$[A-Za-z_.]`)
)

type rewriter struct {
	o       Options
	out     bytes.Buffer
	slots   map[string]bool
	stubs   map[string]bool
	n       int
	cfaRSP  bool
	cfaSave []bool
}

// Rewrite rewrites src.
func Rewrite(src []byte, o Options) (*Result, error) {
	if len(src) > MaxSize {
		return nil, fmt.Errorf("assembly larger than %d bytes", MaxSize)
	}
	rw := &rewriter{o: o, slots: make(map[string]bool), stubs: make(map[string]bool), cfaRSP: true}
	cur, prev := ".text", ".text"
	var stack []string
	var unsupported []error
	lines := strings.Split(string(src), "\n")
	for i, line := range lines {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, ".") {
			name, args, _ := strings.Cut(t, "\t")
			if sp, a, ok := strings.Cut(name, " "); ok {
				name, args = sp, strings.TrimSpace(a+" "+args)
			}
			args = strings.TrimSpace(args)
			switch name {
			case ".section", ".pushsection":
				sec, _, _ := strings.Cut(args, ",")
				sec = strings.TrimSpace(sec)
				if name == ".pushsection" {
					stack = append(stack, cur)
				}
				prev, cur = cur, sec
			case ".text", ".data", ".bss":
				prev, cur = cur, name
			case ".popsection":
				if len(stack) > 0 {
					prev, cur = cur, stack[len(stack)-1]
					stack = stack[:len(stack)-1]
				}
			case ".previous":
				prev, cur = cur, prev
			}
			if strings.HasPrefix(cur, ".debug_") || (strings.HasPrefix(name, ".section") && strings.HasPrefix(args, ".debug_")) {
				continue
			}
			switch name {
			case ".loc", ".loc_mark_labels":
				continue
			case ".file":
				if _, err := strconv.Atoi(strings.Fields(args + " x")[0]); err == nil {
					continue // a numbered .file of the line table
				}
			case ".globl", ".global", ".weak":
				rw.out.WriteString(line + "\n")
				fmt.Fprintf(&rw.out, "\t.hidden\t%s\n", args)
				continue
			case ".cfi_startproc":
				rw.cfaRSP, rw.cfaSave = true, rw.cfaSave[:0]
			case ".cfi_def_cfa_register":
				rw.cfaRSP = isRSP(args)
			case ".cfi_def_cfa":
				reg, _, _ := strings.Cut(args, ",")
				rw.cfaRSP = isRSP(reg)
			case ".cfi_remember_state":
				rw.cfaSave = append(rw.cfaSave, rw.cfaRSP)
			case ".cfi_restore_state":
				if n := len(rw.cfaSave); n > 0 {
					rw.cfaRSP, rw.cfaSave = rw.cfaSave[n-1], rw.cfaSave[:n-1]
				}
			}
			rw.out.WriteString(line + "\n")
			continue
		}
		if strings.HasPrefix(cur, ".debug_") {
			continue
		}
		if t == "" || strings.HasPrefix(t, "#") || strings.HasSuffix(t, ":") || !isText(cur) {
			rw.out.WriteString(line + "\n")
			continue
		}
		if err := rw.insn(line); err != nil {
			// The instruction is replaced by a reference to an undefined
			// symbol: linking fails if the patch keeps its function, and
			// nothing happens if the linker drops it.
			fmt.Fprintf(&rw.out, "\tmovl\t%s(%%rip), %%eax\n", UnsupportedSymbol(o.Unit, len(unsupported)))
			unsupported = append(unsupported, &LineError{Line: i + 1, Text: line, Err: err})
		}
	}
	rw.epilogue()
	res := &Result{Source: rw.out.Bytes(), Rewritten: rw.n, Unsupported: unsupported}
	for s := range rw.slots {
		res.Slots = append(res.Slots, s)
	}
	slices.Sort(res.Slots)
	return res, nil
}

func isText(sec string) bool { return sec == ".text" || strings.HasPrefix(sec, ".text.") }

func isRSP(reg string) bool {
	reg = strings.TrimSpace(reg)
	return reg == "7" || reg == "%rsp" || reg == "rsp"
}

// splitOperands splits at the commas outside parentheses.
func splitOperands(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, c := range s {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	if s = strings.TrimSpace(s[start:]); s != "" || len(out) > 0 {
		out = append(out, s)
	}
	return out
}

func isBranch(m string) bool {
	switch m {
	case "call", "callq", "jmp", "jmpq":
		return true
	}
	return len(m) >= 2 && m[0] == 'j' && !strings.HasPrefix(m, "jmp")
}

// insn rewrites one instruction line.
func (rw *rewriter) insn(line string) error {
	indent := line[:len(line)-len(strings.TrimLeft(line, " \t"))]
	body := strings.TrimSpace(line)
	if i := strings.Index(body, "#"); i >= 0 {
		body = strings.TrimSpace(body[:i])
	}
	head, ops, _ := strings.Cut(body, "\t")
	words := strings.Fields(head)
	if len(words) == 0 {
		rw.out.WriteString(line + "\n")
		return nil
	}
	if !strings.Contains(body, "\t") && len(words) > 1 {
		// "lock addl $1, x(%rip)" written with spaces only.
		words, ops = words[:1], strings.TrimSpace(strings.TrimPrefix(head, words[0]))
	}
	mn := words[len(words)-1]
	prefix := strings.Join(words[:len(words)-1], " ")
	if prefix != "" {
		prefix += " "
	}
	operands := splitOperands(ops)
	// A branch to a symbol.
	if isBranch(mn) && len(operands) == 1 {
		if m := branchRe.FindStringSubmatch(operands[0]); m != nil && !strings.HasPrefix(m[1], ".L") {
			use := UseJump
			if strings.HasPrefix(mn, "call") {
				use = UseCall
			}
			ref, err := rw.resolve(m[1], use)
			if err != nil {
				return err
			}
			switch ref.Action {
			case Keep:
				rw.out.WriteString(line + "\n")
			case Slot:
				rw.n++
				if use == UseCall || strings.HasPrefix(mn, "jmp") {
					fmt.Fprintf(&rw.out, "%s%s%s\t*%s(%%rip)\n", indent, prefix, mn, ref.Slot)
				} else {
					rw.stubs[ref.Slot] = true
					fmt.Fprintf(&rw.out, "%s%s%s\t%s\n", indent, prefix, mn, stubName(ref.Slot))
				}
			default:
				return fmt.Errorf("%w: %s through the library's GOT", ErrUnsupported, m[1])
			}
			return nil
		}
	}
	idx := -1
	var m []string
	for i, op := range operands {
		if immSymRe.MatchString(op) && !strings.HasPrefix(op, "$.L") {
			return fmt.Errorf("%w: absolute address %s (the code is not position-independent)", ErrUnsupported, op)
		}
		if strings.Contains(op, "@tpoff") || strings.Contains(op, "@dtpoff") || strings.Contains(op, "@tlsgd") || strings.Contains(op, "@tlsld") || strings.Contains(op, "@TLSDESC") || strings.Contains(op, "@tlsdesc") {
			return fmt.Errorf("%w: thread-local access %s (only the initial-exec model, @gottpoff, is handled)", ErrUnsupported, op)
		}
		if mm := ripRe.FindStringSubmatch(op); mm != nil && !strings.HasPrefix(mm[2], ".L") {
			if idx >= 0 {
				return fmt.Errorf("%w: two rip-relative operands", ErrUnsupported)
			}
			idx, m = i, mm
		}
	}
	if idx < 0 {
		rw.out.WriteString(line + "\n")
		return nil
	}
	star, sym, rel, off := m[1] == "*", m[2], m[3], m[4]
	k := int64(0)
	if off != "" {
		k, _ = strconv.ParseInt(off, 10, 64)
	}
	var use Use
	switch rel {
	case "":
		use = UseMem
		if mn == "leaq" || mn == "lea" {
			use = UseAddr
		}
	case "@GOTPCREL":
		use = UseGOT
	case "@gottpoff":
		use = UseTLS
	case "@PLT":
		use = UseMem
	default:
		return fmt.Errorf("%w: relocation %s", ErrUnsupported, rel)
	}
	ref, err := rw.resolve(sym, use)
	if err != nil {
		return err
	}
	if ref.Action == Keep {
		rw.out.WriteString(line + "\n")
		return nil
	}
	rw.n++
	replace := func(op string) string {
		o := slices.Clone(operands)
		o[idx] = op
		return fmt.Sprintf("%s%s%s\t%s\n", indent, prefix, mn, strings.Join(o, ", "))
	}
	// The memory operand the instruction needs, once scratch holds the
	// slot's value (or it is the slot itself).
	switch {
	case rel == "@GOTPCREL" && ref.Action == Slot:
		// The slot is a GOT entry of the patch's own.
		rw.out.WriteString(replace(fmt.Sprintf("%s%s(%%rip)", m[1], ref.Slot)))
		return nil
	case rel == "" && (mn == "leaq" || mn == "lea") && ref.Action == Slot && len(operands) == 2:
		dst := operands[1]
		fmt.Fprintf(&rw.out, "%smovq\t%s(%%rip), %s\n", indent, ref.Slot, dst)
		if k != 0 {
			fmt.Fprintf(&rw.out, "%sleaq\t%d(%s), %s\n", indent, k, dst, dst)
		}
		return nil
	}
	if ref.Action == GOTSlot && rel == "" {
		return fmt.Errorf("%w: %s used directly but reached through the library's GOT", ErrUnsupported, sym)
	}
	disp := ""
	if ref.Action == Slot && k != 0 {
		disp = strconv.FormatInt(k, 10)
	}
	// A load into a 32- or 64-bit register that it overwrites whole can
	// use that register as the scratch.
	if len(operands) == 2 && idx == 0 && !star && loadsWhole(mn) {
		if r64, ok := full64(operands[1]); ok {
			fmt.Fprintf(&rw.out, "%smovq\t%s(%%rip), %s\n", indent, ref.Slot, r64)
			rw.out.WriteString(replace(fmt.Sprintf("%s(%s)", disp, r64)))
			return nil
		}
	}
	if star && (strings.HasPrefix(mn, "call") || strings.HasPrefix(mn, "jmp")) {
		// call *S(%rip): r11 is free at a call or a jump out.
		fmt.Fprintf(&rw.out, "%smovq\t%s(%%rip), %%r11\n", indent, ref.Slot)
		rw.out.WriteString(replace(fmt.Sprintf("*%s(%%r11)", disp)))
		return nil
	}
	if usesStack(mn, operands) {
		return fmt.Errorf("%w: %s uses the stack pointer", ErrUnsupported, mn)
	}
	scratch := ""
	for _, r := range []string{"r11", "r10", "r9", "r8"} {
		if !mentions(operands, r) {
			scratch = "%" + r
			break
		}
	}
	if scratch == "" {
		return fmt.Errorf("%w: no scratch register free", ErrUnsupported)
	}
	// Below the stack pointer is the red zone, which the function may use:
	// the scratch is saved below it.
	fmt.Fprintf(&rw.out, "%sleaq\t-%d(%%rsp), %%rsp\n", indent, redZone)
	rw.adjustCFA(indent, redZone)
	fmt.Fprintf(&rw.out, "%spushq\t%s\n", indent, scratch)
	rw.adjustCFA(indent, 8)
	fmt.Fprintf(&rw.out, "%smovq\t%s(%%rip), %s\n", indent, ref.Slot, scratch)
	rw.out.WriteString(replace(fmt.Sprintf("%s%s(%s)", m[1], disp, scratch)))
	fmt.Fprintf(&rw.out, "%spopq\t%s\n", indent, scratch)
	rw.adjustCFA(indent, -8)
	fmt.Fprintf(&rw.out, "%sleaq\t%d(%%rsp), %%rsp\n", indent, redZone)
	rw.adjustCFA(indent, -redZone)
	return nil
}

// redZone is the x86-64 ABI's red zone: 128 bytes below %rsp that a
// function may use without moving %rsp (lea moves it without touching the
// flags).
const redZone = 128

func (rw *rewriter) adjustCFA(indent string, n int) {
	if rw.cfaRSP {
		fmt.Fprintf(&rw.out, "%s.cfi_adjust_cfa_offset %d\n", indent, n)
	}
}

func (rw *rewriter) resolve(sym string, use Use) (Ref, error) {
	ref, err := rw.o.Resolve(sym, use)
	if err != nil {
		return Ref{}, err
	}
	if ref.Action != Keep {
		if ref.Slot == "" {
			return Ref{}, fmt.Errorf("no slot named for %s", sym)
		}
		rw.slots[ref.Slot] = true
	}
	return ref, nil
}

func stubName(slot string) string { return "__ulp_stub" + strings.TrimPrefix(slot, "__ulp_ref") }

// loadsWhole reports whether mn loads its source into its destination
// register, overwriting all of it when that is a 32- or 64-bit register.
func loadsWhole(mn string) bool {
	switch mn {
	case "movl", "movq", "movzbl", "movzwl", "movsbl", "movswl", "movslq", "movsbq", "movswq", "movzbq", "movzwq", "mov":
		return true
	}
	return false
}

var gpr64 = map[string]string{}

func init() {
	for _, r := range []string{"ax", "bx", "cx", "dx", "si", "di", "bp"} {
		gpr64["r"+r] = "%r" + r
		gpr64["e"+r] = "%r" + r
	}
	for i := 8; i <= 15; i++ {
		n := strconv.Itoa(i)
		gpr64["r"+n] = "%r" + n
		gpr64["r"+n+"d"] = "%r" + n
	}
}

// full64 returns the 64-bit register of op, a 32- or 64-bit register
// (not %rsp).
func full64(op string) (string, bool) {
	if !strings.HasPrefix(op, "%") {
		return "", false
	}
	r, ok := gpr64[op[1:]]
	return r, ok
}

// aliases lists the names of each 64-bit register's parts.
var aliases = map[string][]string{
	"r11": {"r11", "r11d", "r11w", "r11b"},
	"r10": {"r10", "r10d", "r10w", "r10b"},
	"r9":  {"r9", "r9d", "r9w", "r9b"},
	"r8":  {"r8", "r8d", "r8w", "r8b"},
}

func mentions(operands []string, reg string) bool {
	for _, op := range operands {
		for _, m := range regRe.FindAllStringSubmatch(op, -1) {
			if slices.Contains(aliases[reg], m[1]) {
				return true
			}
		}
	}
	return false
}

func usesStack(mn string, operands []string) bool {
	if strings.HasPrefix(mn, "push") || strings.HasPrefix(mn, "pop") || strings.HasPrefix(mn, "call") || strings.HasPrefix(mn, "enter") || strings.HasPrefix(mn, "leave") {
		return true
	}
	for _, op := range operands {
		for _, m := range regRe.FindAllStringSubmatch(op, -1) {
			switch m[1] {
			case "rsp", "esp", "sp", "spl":
				return true
			}
		}
	}
	return false
}

// epilogue appends the slots, the stubs of conditional jumps and the root
// table.
func (rw *rewriter) epilogue() {
	slots := make([]string, 0, len(rw.slots))
	for s := range rw.slots {
		slots = append(slots, s)
	}
	slices.Sort(slots)
	for _, s := range slots {
		fmt.Fprintf(&rw.out, "\t.section\t.data.%s,\"aw\",@progbits\n\t.align 8\n\t.type\t%s, @object\n\t.size\t%s, 8\n%s:\n\t.zero\t8\n", s, s, s, s)
	}
	for _, s := range slots {
		if !rw.stubs[s] {
			continue
		}
		st := stubName(s)
		fmt.Fprintf(&rw.out, "\t.section\t.text.%s,\"ax\",@progbits\n\t.type\t%s, @function\n%s:\n\tjmp\t*%s(%%rip)\n\t.size\t%s, .-%s\n", st, st, st, s, st, st)
	}
	if rw.o.Root != "" {
		fmt.Fprintf(&rw.out, "\t.section\t.data.rel.ro.%s,\"aw\"\n\t.align 8\n\t.globl\t%s\n\t.type\t%s, @object\n\t.size\t%s, %d\n%s:\n", rw.o.Root, rw.o.Root, rw.o.Root, rw.o.Root, 8*max(len(rw.o.Roots), 1), rw.o.Root)
		for _, r := range rw.o.Roots {
			fmt.Fprintf(&rw.out, "\t.quad\t%s\n", r)
		}
		if len(rw.o.Roots) == 0 {
			rw.out.WriteString("\t.quad\t0\n")
		}
	}
	rw.out.WriteString("\t.section\t.note.GNU-stack,\"\",@progbits\n")
}
