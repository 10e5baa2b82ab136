package luabind

import (
	lua "github.com/yuin/gopher-lua"
)

// Which handle_out functions may be lent their payload (see outgoing_share.go) is read off
// their bytecode, conservatively: the payload, and any table read from it, must not leave the
// call (stored anywhere, captured by a closure, passed to any function but socket:push, or
// handed to another table's metamethod as an operand or a key) and no table read from it may
// be changed; the payload itself may be changed only by setting fields named by constants.
// (What handle_out returns is dropped.) A value read from a field that does leave the call
// (passed to a function, say) is checked for each broadcast: the payload is lent only when
// that field is not a table. Anything the analysis does not understand gets a copy.

// sharePlan is what planShare found handle_out does with its payload.
type sharePlan struct {
	ok       bool     // the payload may be lent, under the conditions below
	written  []string // the payload's fields the function may set: put back after each call
	fields   []string // fields whose values may leave the call: lent only when none is a table
	anyField bool     // a field read by a computed key may leave the call: no field (or item) may be a table
}

// taint is what a register may hold of the payload, as planShare tracks it.
type taint struct {
	root   bool            // the payload table itself
	fields map[string]bool // the value of one of these fields of it
	any    bool            // the value of a field read by a computed key
	deep   bool            // a value read from a field's value, at any depth
}

func (t *taint) empty() bool { return !t.root && len(t.fields) == 0 && !t.any && !t.deep }

// merge adds o to t and reports whether t grew; its cost is o's fields.
func (t *taint) merge(o *taint) bool {
	grew := false
	if o.root && !t.root {
		t.root, grew = true, true
	}
	if o.any && !t.any {
		t.any, grew = true, true
	}
	if o.deep && !t.deep {
		t.deep, grew = true, true
	}
	for k := range o.fields {
		if !t.fields[k] {
			if t.fields == nil {
				t.fields = make(map[string]bool)
			}
			t.fields[k], grew = true, true
		}
	}
	return grew
}

// Instruction fields (gopher-lua's layout, as Lua 5.1's: opcode 6 bits, A 8, C 9, B 9).
func opOf(i uint32) int   { return int(i >> 26) }
func argA(i uint32) int   { return int(i>>18) & 0xff }
func argB(i uint32) int   { return int(i & 0x1ff) }
func argC(i uint32) int   { return int(i>>9) & 0x1ff }
func argBx(i uint32) int  { return int(i & 0x3ffff) }
func argSbx(i uint32) int { return argBx(i) - 0x3ffff>>1 }

// rkConst is 0x100: an RK operand with it set names a constant, else a register.
const rkConst = 0x100

const (
	// payloadReg and socketReg are handle_out(event, payload, socket)'s parameters' registers.
	payloadReg = 1
	socketReg  = 2
	// entry stands for the function's start among an instruction's predecessors.
	entry = -1
	// maxShareCode and maxShareSteps bound the work planShare does on one function (its
	// instructions, and the steps of its passes and its searches back along paths): past
	// them, copies.
	maxShareCode  = 2000
	maxShareSteps = 1 << 18
	// numRegs is how many registers a function may use.
	numRegs = 256
)

// shareAnalysis is planShare's view of one function: its control flow, and what each
// register may hold of the payload before each instruction.
type shareAnalysis struct {
	p     *lua.FunctionProto
	preds [][]int          // each instruction's predecessors (entry for the first)
	flow  [numRegs]taint   // what each register may hold anywhere, for loops (see taintAt)
	memo  map[[2]int]taint // taintAt's answers, by instruction and register
	busy  map[[2]int]bool  // taintAt's questions being answered
	caps  map[int]bool     // the registers closures made in the function capture
	steps int              // work done, up to maxShareSteps (past it, plan gives up)
}

// spent counts n steps of work and reports whether the budget is spent.
func (a *shareAnalysis) spent(n int) bool {
	a.steps += n
	return a.steps > maxShareSteps
}

// planShare reads fn's bytecode, handle_out's, and says whether its payload may be lent.
// It follows each register's values back along every path to the instructions that set
// them (reaching definitions); where a path loops, it takes what the register may hold
// anywhere in the function.
func planShare(fn *lua.LFunction) sharePlan {
	if fn == nil || fn.Proto == nil || !tablesByLayout {
		return sharePlan{}
	}
	p := fn.Proto
	if int(p.NumParameters) <= payloadReg || len(p.Code) > maxShareCode {
		return sharePlan{} // handle_out(event, ...), or too long to be worth it
	}
	a := &shareAnalysis{p: p, memo: map[[2]int]taint{}, busy: map[[2]int]bool{}, caps: map[int]bool{}}
	a.buildFlow()
	return a.plan()
}

// planShareCached is planShare, once per function prototype of c (every VM of a chunk runs
// the same compiled handle_out).
func (c *chunk) planShareCached(fn *lua.LFunction) sharePlan {
	if fn == nil || fn.Proto == nil {
		return sharePlan{}
	}
	if p, ok := c.plans.Load(fn.Proto); ok {
		return p.(sharePlan)
	}
	p := planShare(fn)
	c.plans.Store(fn.Proto, p)
	return p
}

// successors are the instructions that may run after the one at pc, and the next
// instruction's index (past pseudo-instructions); none after a return.
func successors(p *lua.FunctionProto, pc int) (succ []int, next int) {
	i := p.Code[pc]
	next = pc + 1
	switch opOf(i) {
	case lua.OP_CLOSURE:
		next += int(p.FunctionPrototypes[argBx(i)].NumUpvalues) // its upvalues' pseudo-instructions
	case lua.OP_SETLIST:
		if argC(i) == 0 {
			next++ // the count, in the next word
		}
	}
	switch opOf(i) {
	case lua.OP_JMP, lua.OP_FORPREP:
		return []int{pc + 1 + argSbx(i)}, next
	case lua.OP_FORLOOP:
		return []int{next, pc + 1 + argSbx(i)}, next
	case lua.OP_EQ, lua.OP_LT, lua.OP_LE, lua.OP_TEST, lua.OP_TESTSET, lua.OP_TFORLOOP:
		return []int{next, pc + 2}, next
	case lua.OP_LOADBOOL:
		if argC(i) != 0 {
			return []int{pc + 2}, next
		}
	case lua.OP_RETURN:
		return nil, next
	}
	return []int{next}, next
}

// buildFlow fills in preds, and flow: what the payload may flow into, register by register,
// every instruction taken as reachable from every other.
func (a *shareAnalysis) buildFlow() {
	code := a.p.Code
	a.preds = make([][]int, len(code)+2)
	a.preds[0] = []int{entry}
	for pc := 0; pc < len(code); {
		succ, next := successors(a.p, pc)
		for _, s := range succ {
			if s >= 0 && s < len(a.preds) {
				a.preds[s] = append(a.preds[s], pc)
			}
		}
		if i := code[pc]; opOf(i) == lua.OP_CLOSURE {
			for j := pc + 1; j < next && j < len(code); j++ {
				if u := code[j]; opOf(u) == lua.OP_MOVE {
					a.caps[argB(u)] = true
				}
			}
		}
		pc = next
	}
	a.flow[payloadReg].root = true
	for grew := true; grew && !a.spent(len(code)); {
		grew = false
		for pc := 0; pc < len(code) && !a.spent(0); {
			i := code[pc]
			r := argA(i)
			if b := argB(i); b < numRegs {
				a.spent(len(a.flow[b].fields)) // what a merge from R(B) costs
			}
			switch opOf(i) {
			case lua.OP_MOVE, lua.OP_MOVEN, lua.OP_TESTSET:
				grew = a.flow[r].merge(&a.flow[argB(i)]) || grew
			case lua.OP_GETTABLE, lua.OP_GETTABLEKS:
				t := a.read(-1, &a.flow[argB(i)], argC(i))
				grew = a.flow[r].merge(&t) || grew
			case lua.OP_SELF:
				t := a.read(-1, &a.flow[argB(i)], argC(i))
				grew = a.flow[r].merge(&t) || grew
				if r+1 < numRegs {
					grew = a.flow[r+1].merge(&a.flow[argB(i)]) || grew
				}
			}
			_, pc = successors(a.p, pc)
		}
	}
}

// writersAt are the instructions that may have set register r last before the one at pc
// runs, along every path there; entry among them when a path from the start sets none.
func (a *shareAnalysis) writersAt(pc, r int) []int {
	var found []int
	seen := map[int]bool{}
	stack := append([]int(nil), a.preds[pc]...)
	for len(stack) > 0 {
		q := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[q] {
			continue
		}
		seen[q] = true
		if a.spent(1) {
			return nil // unsound from here on: plan sees the budget spent, and gives up
		}
		if q == entry {
			found = append(found, entry)
			continue
		}
		if lo, hi := writes(a.p, q); lo <= r && r <= hi {
			found = append(found, q)
			continue
		}
		stack = append(stack, a.preds[q]...)
	}
	return found
}

// taintAt is what register r may hold of the payload before the instruction at pc runs.
func (a *shareAnalysis) taintAt(pc, r int) taint {
	if r < 0 || r >= numRegs {
		return taint{}
	}
	key := [2]int{pc, r}
	if t, ok := a.memo[key]; ok {
		return t
	}
	if a.busy[key] {
		return a.flow[r] // a loop: what r may hold anywhere covers it
	}
	a.busy[key] = true
	var t taint
	for _, q := range a.writersAt(pc, r) {
		w := a.produced(q, r)
		a.spent(len(w.fields))
		t.merge(&w)
	}
	delete(a.busy, key)
	a.memo[key] = t
	return t
}

// produced is what the instruction at q (or the call, at entry) leaves in register r,
// which it writes.
func (a *shareAnalysis) produced(q, r int) taint {
	if q == entry {
		return taint{root: r == payloadReg}
	}
	i := a.p.Code[q]
	switch opOf(i) {
	case lua.OP_MOVE, lua.OP_MOVEN:
		return a.taintAt(q, argB(i))
	case lua.OP_TESTSET: // R(A) := R(B), or R(A) kept
		t, kept := a.taintAt(q, argB(i)), a.taintAt(q, r)
		t.merge(&kept)
		return t
	case lua.OP_GETTABLE, lua.OP_GETTABLEKS:
		src := a.taintAt(q, argB(i))
		return a.read(q, &src, argC(i))
	case lua.OP_SELF:
		src := a.taintAt(q, argB(i))
		if r == argA(i) {
			return a.read(q, &src, argC(i))
		}
		return src
	}
	// A constant, a new table, a number, a boolean, a string, a global or an upvalue,
	// a closure, or what a call or a metamethod returned: none of them the payload's.
	// Nothing of the payload reaches a function but as an argument or an operand, and a
	// table of it that does fails the plan (socket:push returns nothing).
	return taint{}
}

// read is what R(A) gets from R(B)[key] (key an RK operand) when R(B) holds src; at < 0
// asks for no register key to be resolved.
func (a *shareAnalysis) read(at int, src *taint, key int) taint {
	var t taint
	if src.root {
		if k, ok := a.constString(at, key); ok {
			t.fields = map[string]bool{k: true}
		} else {
			t.any = true
		}
	}
	if len(src.fields) > 0 || src.any || src.deep {
		t.deep = true
	}
	return t
}

// constString gives the string operand rk (RK) of the instruction at pc names: a constant,
// or a register every path sets to the same constant (a local, or a key gopher-lua loads
// into a register, as it does past 255 constants), and no closure captures (a closure may
// set it to anything).
func (a *shareAnalysis) constString(pc, rk int) (string, bool) {
	if rk&rkConst != 0 {
		s, ok := a.p.Constants[rk&^rkConst].(lua.LString)
		return string(s), ok
	}
	if pc < 0 || a.caps[rk] {
		return "", false
	}
	var k string
	ws := a.writersAt(pc, rk)
	for j, q := range ws {
		if q == entry || opOf(a.p.Code[q]) != lua.OP_LOADK {
			return "", false
		}
		s, ok := a.p.Constants[argBx(a.p.Code[q])].(lua.LString)
		if !ok || (j > 0 && string(s) != k) {
			return "", false
		}
		k = string(s)
	}
	return k, len(ws) > 0
}

// plan checks every instruction for the payload leaving the call or changing.
func (a *shareAnalysis) plan() sharePlan {
	p := a.p
	plan := sharePlan{ok: true}
	seenField, written := map[string]bool{}, map[string]bool{}
	leaveTaint := func(t *taint) {
		if t.root || t.deep {
			plan.ok = false
		}
		plan.anyField = plan.anyField || t.any
		for k := range t.fields {
			if !seenField[k] {
				seenField[k] = true
				plan.fields = append(plan.fields, k)
			}
		}
	}
	leave := func(pc, r int) { // R(r) may leave the call at pc
		t := a.taintAt(pc, r)
		leaveTaint(&t)
	}
	leaveAny := func(r int) { // R(r) may leave the call with anything it ever holds
		t := a.flow[r]
		leaveTaint(&t)
	}
	leaveRK := func(pc, rk int) {
		if rk&rkConst == 0 {
			leave(pc, rk)
		}
	}
	leaveFrom := func(pc, lo, hi int) { // R(lo) .. R(hi); hi < 0 for every one from lo on
		if hi < 0 || hi >= int(p.NumUsedRegisters) {
			hi = int(p.NumUsedRegisters) - 1
		}
		for r := lo; r <= hi; r++ {
			leave(pc, r)
		}
	}
	for pc := 0; pc < len(p.Code) && plan.ok && !a.spent(0); {
		i := p.Code[pc]
		r, b, c := argA(i), argB(i), argC(i)
		switch opOf(i) {
		case lua.OP_SETTABLE, lua.OP_SETTABLEKS:
			if t := a.taintAt(pc, r); !t.empty() {
				k, ok := a.constString(pc, b)
				if !t.root || len(t.fields) > 0 || t.any || t.deep || !ok {
					plan.ok = false // a change to a table read from it, or by a computed key
					break
				}
				if !written[k] {
					written[k] = true
					plan.written = append(plan.written, k)
				}
			}
			leaveRK(pc, b)
			leaveRK(pc, c)
		case lua.OP_GETTABLE, lua.OP_GETTABLEKS, lua.OP_SELF:
			leaveRK(pc, c) // a key: another table's __index gets it
		case lua.OP_ADD, lua.OP_SUB, lua.OP_MUL, lua.OP_DIV, lua.OP_MOD, lua.OP_POW:
			// Operands: the other one's metamethod gets both. A constant has none, and
			// nor has the payload's data.
			if b&rkConst == 0 && c&rkConst == 0 {
				leave(pc, b)
				leave(pc, c)
			}
		case lua.OP_SETGLOBAL, lua.OP_SETUPVAL:
			leave(pc, r)
		case lua.OP_SETLIST:
			if b == 0 {
				leaveFrom(pc, r+1, -1)
			} else {
				leaveFrom(pc, r+1, r+b)
			}
		case lua.OP_CALL, lua.OP_TAILCALL:
			// The callee is not checked: one read from the payload is data (a call of it
			// fails) or a field the function set, which holds no table of the payload.
			if b == 4 && a.isSocketPush(pc, r) {
				break // socket:push(event, payload) encodes it and keeps nothing
			}
			if b == 0 {
				leaveFrom(pc, r+1, -1)
			} else {
				leaveFrom(pc, r+1, r+b-1)
			}
		case lua.OP_TFORLOOP:
			leave(pc, r+1)
			leave(pc, r+2)
		case lua.OP_CLOSURE:
			// A register the closure captures is shared with it: whatever the register
			// holds at any time (not only now) may leave through it, and a call of the
			// closure may change it (so socket:push is not recognised once the socket
			// register is captured).
			n := int(p.FunctionPrototypes[argBx(i)].NumUpvalues)
			for j := 1; j <= n && pc+j < len(p.Code); j++ {
				if u := p.Code[pc+j]; opOf(u) == lua.OP_MOVE {
					leaveAny(argB(u))
				}
			}
		}
		_, pc = successors(p, pc)
	}
	if !plan.ok || a.spent(0) {
		return sharePlan{}
	}
	return plan
}

// isSocketPush reports whether the call at pc, of R(r), is socket:push: on every path there
// R(r) and R(r+1) were last set by one `SELF r socketReg "push"`, where socketReg still held
// the socket handle_out was called with.
func (a *shareAnalysis) isSocketPush(pc, r int) bool {
	if int(a.p.NumParameters) <= socketReg {
		return false
	}
	ws := a.writersAt(pc, r)
	if len(ws) != 1 || ws[0] == entry {
		return false
	}
	q := ws[0]
	if ws1 := a.writersAt(pc, r+1); len(ws1) != 1 || ws1[0] != q {
		return false
	}
	i := a.p.Code[q]
	if opOf(i) != lua.OP_SELF || argB(i) != socketReg || argC(i)&rkConst == 0 {
		return false
	}
	if k, ok := a.p.Constants[argC(i)&^rkConst].(lua.LString); !ok || k != "push" {
		return false
	}
	sw := a.writersAt(q, socketReg)
	return len(sw) == 1 && sw[0] == entry && !a.caps[socketReg]
}

// writes gives the registers the instruction at pc may write, lo to hi; hi < lo for none.
// Pseudo-instructions (a closure's upvalues, SETLIST's count) are not asked about.
func writes(p *lua.FunctionProto, pc int) (lo, hi int) {
	i := p.Code[pc]
	a, b, c := argA(i), argB(i), argC(i)
	switch opOf(i) {
	case lua.OP_MOVE, lua.OP_MOVEN, lua.OP_LOADK, lua.OP_LOADBOOL, lua.OP_GETUPVAL,
		lua.OP_GETGLOBAL, lua.OP_GETTABLE, lua.OP_GETTABLEKS, lua.OP_NEWTABLE,
		lua.OP_ADD, lua.OP_SUB, lua.OP_MUL, lua.OP_DIV, lua.OP_MOD, lua.OP_POW,
		lua.OP_UNM, lua.OP_NOT, lua.OP_LEN, lua.OP_CONCAT, lua.OP_TESTSET,
		lua.OP_CLOSURE, lua.OP_FORPREP:
		return a, a
	case lua.OP_LOADNIL:
		return a, b
	case lua.OP_SELF:
		return a, a + 1
	case lua.OP_CALL:
		if c == 0 {
			return a, numRegs - 1
		}
		return a, a + c - 2
	case lua.OP_TAILCALL:
		return a, numRegs - 1
	case lua.OP_VARARG:
		if b == 0 {
			return a, numRegs - 1
		}
		return a, a + b - 2
	case lua.OP_FORLOOP:
		return a, a + 3
	case lua.OP_TFORLOOP:
		return a + 2, numRegs - 1
	}
	return 0, -1
}
