package luabind

import (
	"bytes"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/ast"
	"github.com/yuin/gopher-lua/parse"
)

const (
	// maxSourceSize is the largest script or module file loaded, in bytes.
	maxSourceSize = 1 << 20
	// maxSourceDepth bounds how deeply a file's statements and expressions nest. gopher-lua's
	// compiler recurses over the syntax tree, and a deep enough tree overflows the Go stack,
	// which no recover can catch: it kills the process.
	maxSourceDepth = 1000
)

// compile parses, checks and compiles a chunk; errors name file and line. Between parsing and
// compiling, every `..` becomes a call of the size-capped concat, and after it every tail call
// a plain call (see limits.go).
func compile(name string, src []byte) (*lua.FunctionProto, error) {
	if len(src) > maxSourceSize {
		return nil, scriptErrorf(name, "the file is %d bytes, more than the %d a script may have", len(src), maxSourceSize)
	}
	chunk, err := parse.Parse(bytes.NewReader(src), name)
	if err != nil {
		return nil, compileError(name, src, err)
	}
	r := rewriter{file: name}
	r.block(chunk)
	if r.err != nil {
		return nil, r.err
	}
	proto, err := lua.Compile(chunk, name)
	if err != nil {
		return nil, compileError(name, src, err)
	}
	noTailCalls(proto)
	return proto, nil
}

// rewriter walks a syntax tree, checking its depth and rewriting concatenations in place.
type rewriter struct {
	file  string
	depth int
	err   *ScriptError
}

// enter counts one level of nesting at node; false means too deep, and the walk stops.
func (r *rewriter) enter(node ast.PositionHolder) bool {
	if r.err != nil {
		return false
	}
	if r.depth++; r.depth > maxSourceDepth {
		r.err = &ScriptError{File: r.file, Line: node.Line(), Msg: "the code nests too deeply (more than 1000 levels)"}
		return false
	}
	return true
}

func (r *rewriter) block(stmts []ast.Stmt) {
	for _, s := range stmts {
		r.stmt(s)
	}
}

func (r *rewriter) exprs(list []ast.Expr) {
	for i := range list {
		list[i] = r.expr(list[i])
	}
}

func (r *rewriter) stmt(s ast.Stmt) {
	if !r.enter(s) {
		return
	}
	defer func() { r.depth-- }()
	switch s := s.(type) {
	case *ast.AssignStmt:
		r.exprs(s.Lhs)
		r.exprs(s.Rhs)
	case *ast.LocalAssignStmt:
		r.exprs(s.Exprs)
	case *ast.FuncCallStmt:
		s.Expr = r.expr(s.Expr)
	case *ast.DoBlockStmt:
		r.block(s.Stmts)
	case *ast.WhileStmt:
		s.Condition = r.expr(s.Condition)
		r.block(s.Stmts)
	case *ast.RepeatStmt:
		r.block(s.Stmts)
		s.Condition = r.expr(s.Condition)
	case *ast.IfStmt:
		s.Condition = r.expr(s.Condition)
		r.block(s.Then)
		r.block(s.Else)
	case *ast.NumberForStmt:
		s.Init, s.Limit = r.expr(s.Init), r.expr(s.Limit)
		if s.Step != nil {
			s.Step = r.expr(s.Step)
		}
		r.block(s.Stmts)
	case *ast.GenericForStmt:
		r.exprs(s.Exprs)
		r.block(s.Stmts)
	case *ast.FuncDefStmt:
		r.expr(s.Func)
	case *ast.ReturnStmt:
		r.exprs(s.Exprs)
	}
}

// expr returns e with its concatenations rewritten.
func (r *rewriter) expr(e ast.Expr) ast.Expr {
	if e == nil || !r.enter(e) {
		return e
	}
	defer func() { r.depth-- }()
	switch e := e.(type) {
	case *ast.StringConcatOpExpr:
		return r.concat(e)
	case *ast.AttrGetExpr:
		e.Object, e.Key = r.expr(e.Object), r.expr(e.Key)
	case *ast.TableExpr:
		for _, f := range e.Fields {
			f.Key, f.Value = r.expr(f.Key), r.expr(f.Value)
		}
	case *ast.FuncCallExpr:
		e.Func, e.Receiver = r.expr(e.Func), r.expr(e.Receiver)
		r.exprs(e.Args)
	case *ast.LogicalOpExpr:
		e.Lhs, e.Rhs = r.expr(e.Lhs), r.expr(e.Rhs)
	case *ast.RelationalOpExpr:
		e.Lhs, e.Rhs = r.expr(e.Lhs), r.expr(e.Rhs)
	case *ast.ArithmeticOpExpr:
		e.Lhs, e.Rhs = r.expr(e.Lhs), r.expr(e.Rhs)
	case *ast.UnaryMinusOpExpr:
		e.Expr = r.expr(e.Expr)
	case *ast.UnaryNotOpExpr:
		e.Expr = r.expr(e.Expr)
	case *ast.UnaryLenOpExpr:
		e.Expr = r.expr(e.Expr)
	case *ast.FunctionExpr:
		r.block(e.Stmts)
	}
	return e
}

// concat rewrites a .. b .. c (one right-leaning chain, which Lua evaluates as one
// concatenation) into ("")[concatKey](a, b, c). The call is parenthesized, (f(...)), so it
// yields one value and is never a tail call, which keeps the caller's line in errors; so is
// its last argument, which a bare f() or ... would otherwise spread over several.
func (r *rewriter) concat(e *ast.StringConcatOpExpr) ast.Expr {
	var operands []ast.Expr
	var next ast.Expr = e
	for {
		c, ok := next.(*ast.StringConcatOpExpr)
		if !ok {
			break
		}
		operands = append(operands, r.expr(c.Lhs))
		next = c.Rhs
	}
	last := r.expr(next)
	switch l := last.(type) {
	case *ast.FuncCallExpr:
		l.AdjustRet = true
	case *ast.Comma3Expr:
		l.AdjustRet = true
	}
	operands = append(operands, last)

	empty, key := &ast.StringExpr{}, &ast.StringExpr{Value: concatKey}
	fn := &ast.AttrGetExpr{Object: empty, Key: key}
	call := &ast.FuncCallExpr{Func: fn, Args: operands, AdjustRet: true}
	for _, n := range []ast.PositionHolder{empty, key, fn, call} {
		n.SetLine(e.Line())
		n.SetLastLine(e.LastLine())
	}
	return call
}
