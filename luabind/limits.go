package luabind

import (
	"sort"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// The limits below bound what one Go builtin, which gopher-lua cannot interrupt, may do in a
// single call: long loops check the CPU budget as they go (checkBudget), and results are
// capped in size, so no single call runs past the budget or grows the process by more than a
// bounded amount. Ordinary scripts never come near them.
const (
	// maxStringLen is the longest string `..`, string.rep, string.format, string.gsub,
	// table.concat and luachan.json.encode may build: 8 MiB, eight times the largest frame.
	maxStringLen = 8 << 20
	// maxArrayIndex is the largest index kept in a table's array part (gopher-lua's is 2^26);
	// larger ones go to the hash part. One t[i] = v grows an array by at most this many values
	// (16 MiB); gopher-lua's own bound let t[67108863] = true take 15 s and 4.5 GB.
	maxArrayIndex = 1 << 20
	// budgetCheckEvery is how many steps a Go loop of ours takes between budget checks.
	budgetCheckEvery = 1 << 10
)

// noTailCalls turns every tail call of proto and the functions it defines into a plain call
// followed by its return (which the compiler emits after each tail call anyway), so that every
// call takes a frame and counts against the call-depth limit.
//
// gopher-lua counts a frame's tail calls and, when a protected call fails, writes one
// "(tailcall)" line per tail call into the traceback it builds. A tail-call loop makes tens
// of millions of them within its budget: building that traceback kept the call running for
// seconds past its budget, allocated hundreds of MiB, and its long copies held up the garbage
// collector's stop-the-world, and with it every other goroutine, for up to a second. Without
// tail calls the traceback is bounded by the call depth, and a tail-call loop ends at the depth
// limit in about a millisecond. The price: tail recursion is limited to callStackSize levels,
// like any other recursion.
func noTailCalls(proto *lua.FunctionProto) {
	const opShift = 26 // where gopher-lua keeps an instruction's opcode
	for i, inst := range proto.Code {
		if int(inst>>opShift) == lua.OP_TAILCALL {
			proto.Code[i] = inst&(1<<opShift-1) | uint32(lua.OP_CALL)<<opShift
		}
	}
	for _, p := range proto.FunctionPrototypes {
		noTailCalls(p)
	}
}

func init() {
	// gopher-lua reads this package variable for every table; it is set once, before any VM.
	lua.MaxArrayIndex = maxArrayIndex
}

// concatKey is the string library field holding concat: every `a .. b .. c` of a script
// compiles to ("")[concatKey](a, b, c) (see source.go), so concatenation is size-capped too.
// A string key no identifier can spell; the library itself is read-only to scripts.
const concatKey = "\x00concat"

// guardBuiltins replaces the builtins that can run long or build large values, and the ones
// that could change what a VM shares between calls.
func (v *vm) guardBuiltins(base, str, tab *lua.LTable) {
	L := v.L
	gfunc := func(t *lua.LTable, name string) lua.LGFunction {
		return t.RawGetString(name).(*lua.LFunction).GFunction
	}
	base.RawSetString("rawset", L.NewFunction(v.rawset))
	base.RawSetString("setmetatable", L.NewFunction(setmetatable(gfunc(base, "setmetatable"))))

	str.RawSetString("rep", L.NewFunction(strRep))
	str.RawSetString("format", L.NewFunction(strFormat))
	str.RawSetString("find", L.NewFunction(strFind))
	str.RawSetString("match", L.NewFunction(strMatch))
	str.RawSetString("gmatch", L.NewFunction(strGmatch))
	str.RawSetString("gfind", str.RawGetString("gmatch"))
	str.RawSetString("gsub", L.NewFunction(strGsub))
	str.RawSetString(concatKey, L.NewFunction(concat))

	insert := gfunc(tab, "insert")
	tab.RawSetString("insert", L.NewFunction(func(L *lua.LState) int {
		if v.isLocked(L.CheckTable(1)) {
			L.RaiseError("cannot change a read-only table")
		}
		return insert(L)
	}))
	tab.RawSetString("concat", L.NewFunction(tableConcat))
	tab.RawSetString("sort", L.NewFunction(tableSort))
}

// checkBudget raises the running call's budget error once the budget has ended: what gopher-lua
// does between instructions, for our Go loops that run long within one.
func checkBudget(L *lua.LState) {
	ctx := L.Context()
	if ctx == nil {
		return
	}
	select {
	case <-ctx.Done():
		L.RaiseError("%s", ctx.Err())
	default:
	}
}

// checkLen raises an error when a result of n bytes would be longer than maxStringLen.
func checkLen(L *lua.LState, fn string, n float64) {
	if n > maxStringLen {
		L.RaiseError("%s: the result would be longer than %d bytes", fn, maxStringLen)
	}
}

// concatenable reports whether `..` takes v as it is: strings and numbers.
func concatenable(v lua.LValue) bool {
	switch v.(type) {
	case lua.LString, lua.LNumber:
		return true
	}
	return false
}

// concat is `a .. b .. c`: Lua's concatenation of its arguments, folding from the right, with
// __concat for operands that are not strings or numbers, and results capped at maxStringLen.
func concat(L *lua.LState) int {
	n := L.GetTop()
	rhs := L.Get(n)
	for i := n - 1; i >= 1; {
		lhs := L.Get(i)
		if !concatenable(lhs) || !concatenable(rhs) {
			mm := L.GetMetaField(lhs, "__concat")
			if mm == lua.LNil {
				mm = L.GetMetaField(rhs, "__concat")
			}
			if _, ok := mm.(*lua.LFunction); !ok {
				bad := lhs
				if concatenable(lhs) {
					bad = rhs
				}
				L.RaiseError("attempt to concatenate a %s value", typeName(bad))
			}
			L.Push(mm)
			L.Push(lhs)
			L.Push(rhs)
			L.Call(2, 1)
			rhs = L.Get(-1)
			L.Pop(1)
			i--
			continue
		}
		// The run of strings and numbers ending at rhs, joined at once.
		j := i
		for j > 1 && concatenable(L.Get(j-1)) {
			j--
		}
		total := len(lua.LVAsString(rhs))
		for k := j; k <= i; k++ {
			total += len(lua.LVAsString(L.Get(k)))
		}
		checkLen(L, "concatenation", float64(total))
		var b strings.Builder
		b.Grow(total)
		for k := j; k <= i; k++ {
			b.WriteString(lua.LVAsString(L.Get(k)))
		}
		b.WriteString(lua.LVAsString(rhs))
		rhs = lua.LString(b.String())
		i = j - 1
	}
	L.Push(rhs)
	return 1
}

// strRep is string.rep(s, n), its result capped at maxStringLen.
func strRep(L *lua.LState) int {
	s := L.CheckString(1)
	n := float64(L.CheckNumber(2))
	if n < 1 || s == "" {
		L.Push(lua.LString(""))
		return 1
	}
	checkLen(L, "string.rep", float64(len(s))*n)
	L.Push(lua.LString(strings.Repeat(s, int(n))))
	return 1
}

// tableConcat is table.concat(t, sep, i, j), its result capped at maxStringLen.
func tableConcat(L *lua.LState) int {
	t := L.CheckTable(1)
	sep := L.OptString(2, "")
	i, j := L.OptInt(3, 1), L.OptInt(4, t.Len())
	if i > j {
		L.Push(lua.LString(""))
		return 1
	}
	total := 0
	for k := i; k <= j; k++ {
		item := t.RawGet(lua.LNumber(k))
		if !concatenable(item) {
			L.RaiseError("invalid value (at index %d) in table for 'concat'", k)
		}
		total += len(lua.LVAsString(item))
		if k < j {
			total += len(sep)
		}
		checkLen(L, "table.concat", float64(total))
	}
	var b strings.Builder
	b.Grow(total)
	for k := i; k <= j; k++ {
		b.WriteString(lua.LVAsString(t.RawGet(lua.LNumber(k))))
		if k < j {
			b.WriteString(sep)
		}
	}
	L.Push(lua.LString(b.String()))
	return 1
}

// tableSort is table.sort(t, less), checking the budget as it goes: gopher-lua's sorts up to
// a million values in one uninterruptible Go call.
func tableSort(L *lua.LState) int {
	t := L.CheckTable(1)
	var less *lua.LFunction
	if L.GetTop() >= 2 && L.Get(2) != lua.LNil {
		less = L.CheckFunction(2)
	}
	items := make([]lua.LValue, t.Len())
	for i := range items {
		items[i] = t.RawGetInt(i + 1)
	}
	steps := 0
	sort.Slice(items, func(i, j int) bool {
		if steps++; steps%budgetCheckEvery == 0 {
			checkBudget(L)
		}
		if less == nil {
			return L.LessThan(items[i], items[j])
		}
		L.Push(less)
		L.Push(items[i])
		L.Push(items[j])
		L.Call(2, 1)
		r := lua.LVAsBool(L.Get(-1))
		L.Pop(1)
		return r
	})
	for i, item := range items {
		t.RawSetInt(i+1, item)
	}
	return 0
}
