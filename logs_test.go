package luachan_test

// Operators filter and alert on a log line's msg and keys, so every warning and error
// has a msg that does not change from one line to the next, and constant keys; what
// varies goes in the values. TestLogMessagesConstant reads the sources to hold it.

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// logMethods are the slog calls checked, with the index of their msg argument.
var logMethods = map[string]int{"Warn": 0, "Error": 0, "WarnContext": 1, "ErrorContext": 1}

// notLoggers are the names before a .Error that is not slog's: packages, and L, the
// gopher-lua state every Lua function is given (L.Error raises a Lua error).
var notLoggers = map[string]bool{"http": true, "errors": true, "fmt": true, "L": true}

func TestLogMessagesConstant(t *testing.T) {
	pkgs := map[string][]*ast.File{} // by folder
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "node_modules", "testdata":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		pkgs[filepath.Dir(path)] = append(pkgs[filepath.Dir(path)], f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var bad []string
	calls := 0
	for _, files := range pkgs {
		n, problems := checkLogCalls(fset, files)
		calls += n
		bad = append(bad, problems...)
	}
	sort.Strings(bad)
	for _, b := range bad {
		t.Error(b)
	}
	if calls < 20 {
		t.Fatalf("found only %d Warn and Error calls: the scan is not reading the sources", calls)
	}
}

// TestLogMessagesConstantCatches feeds the checker bad calls, and good ones.
func TestLogMessagesConstantCatches(t *testing.T) {
	const src = `package p

const stable = "stable message"

func good(log *slog.Logger, err error, which bool) {
	log.Warn("literal", "key", err)
	log.Error(stable, slog.String("key", "v"), "other", 1)
	msg := "one"
	if which {
		msg = "two"
	}
	log.Error(msg, "err", err)
	report(log, "passed a literal", err)
	log.Warn("spread", attrs...)
	http.Error(w, fmt.Sprintf("%d", 1), 500)
}

func report(log *slog.Logger, msg string, err error) {
	log.Warn(msg, "err", err)
}

func bad(log *slog.Logger, name string, err error, key string) {
	log.Warn("script " + name + " failed")
	log.Error(fmt.Sprintf("bad %s", name), "err", err)
	log.ErrorContext(ctx, err.Error())
	log.Warn("keyed", key, 1)
	m := "x"
	m = name
	log.Error(m)
	sometimes(log, name)
}

func sometimes(log *slog.Logger, msg string) {
	log.Error(msg)
}
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "p.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	n, problems := checkLogCalls(fset, []*ast.File{f})
	if n != 11 {
		t.Errorf("checked %d calls, want 11 (http.Error is not a log call)", n)
	}
	var lines []int
	for _, p := range problems {
		var line int
		fmt.Sscanf(p[strings.Index(p, ":")+1:], "%d", &line)
		lines = append(lines, line)
	}
	sort.Ints(lines)
	want := []int{23, 24, 25, 26, 29, 34}
	if fmt.Sprint(lines) != fmt.Sprint(want) {
		t.Errorf("problems on lines %v, want %v:\n%s", lines, want, strings.Join(problems, "\n"))
	}
}

// checkLogCalls returns how many Warn and Error calls files (one package) make, and a
// line for each whose msg is not constant or whose keys are not.
func checkLogCalls(fset *token.FileSet, files []*ast.File) (calls int, problems []string) {
	funcs := map[string]*ast.FuncDecl{}
	for _, f := range files {
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Body != nil {
				funcs[fd.Name.Name] = fd
			}
		}
	}
	c := &logChecker{files: files, funcs: funcs}
	for _, fd := range funcs {
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			at, ok := logMethods[sel.Sel.Name]
			if !ok || len(call.Args) <= at {
				return true
			}
			if id, ok := sel.X.(*ast.Ident); ok && notLoggers[id.Name] {
				return true
			}
			calls++
			pos := fset.Position(call.Pos())
			if !c.constant(call.Args[at], fd, 0) {
				problems = append(problems, fmt.Sprintf("%s:%d: %s's msg is not a constant string: keep msg stable, put what varies in a value", pos.Filename, pos.Line, sel.Sel.Name))
			}
			if key := badKey(call, at); key != nil {
				problems = append(problems, fmt.Sprintf("%s:%d: %s has a key that is not a constant string", pos.Filename, pos.Line, sel.Sel.Name))
			}
			return true
		})
	}
	return calls, problems
}

// badKey returns the first key of call's key-value pairs (after the msg at at) that is not
// a string literal; slog.Attr values (slog.String(...)) take one place. A spread
// (attrs...) is not followed.
func badKey(call *ast.CallExpr, at int) ast.Expr {
	args := call.Args[at+1:]
	if call.Ellipsis.IsValid() {
		return nil
	}
	for i := 0; i < len(args); i++ {
		if fc, ok := args[i].(*ast.CallExpr); ok {
			if sel, ok := fc.Fun.(*ast.SelectorExpr); ok {
				if id, ok := sel.X.(*ast.Ident); ok && id.Name == "slog" {
					continue // an Attr
				}
			}
		}
		if lit, ok := args[i].(*ast.BasicLit); !ok || lit.Kind != token.STRING {
			return args[i]
		}
		i++ // the value
	}
	return nil
}

// logChecker decides whether a msg expression is constant.
type logChecker struct {
	files []*ast.File
	funcs map[string]*ast.FuncDecl
}

// constant reports whether e is a string constant: a literal, a named constant, a
// local variable only ever assigned constants, or a parameter every caller in the
// package passes a constant.
func (c *logChecker) constant(e ast.Expr, fd *ast.FuncDecl, depth int) bool {
	switch e := e.(type) {
	case *ast.BasicLit:
		return e.Kind == token.STRING
	case *ast.ParenExpr:
		return c.constant(e.X, fd, depth)
	case *ast.Ident:
		if e.Obj == nil {
			return false
		}
		switch e.Obj.Kind {
		case ast.Con:
			return true
		case ast.Var:
			if i := paramIndex(fd, e.Name); i >= 0 {
				return depth < 3 && c.callersPassConstant(fd, i, depth+1)
			}
			return c.assignedConstants(fd, e.Name, depth)
		}
	}
	return false
}

// paramIndex is the position of name among fd's parameters, -1 if it is not one.
func paramIndex(fd *ast.FuncDecl, name string) int {
	i := 0
	for _, field := range fd.Type.Params.List {
		for _, n := range field.Names {
			if n.Name == name {
				return i
			}
			i++
		}
		if len(field.Names) == 0 {
			i++
		}
	}
	return -1
}

// assignedConstants reports whether every assignment to name in fd is a constant.
func (c *logChecker) assignedConstants(fd *ast.FuncDecl, name string, depth int) bool {
	ok, seen := true, false
	ast.Inspect(fd.Body, func(n ast.Node) bool {
		switch s := n.(type) {
		case *ast.AssignStmt:
			for i, lhs := range s.Lhs {
				if id, isID := lhs.(*ast.Ident); isID && id.Name == name {
					seen = true
					if len(s.Rhs) != len(s.Lhs) || !c.constant(s.Rhs[i], fd, depth) {
						ok = false
					}
				}
			}
		case *ast.ValueSpec:
			for i, id := range s.Names {
				if id.Name == name {
					seen = true
					if i >= len(s.Values) || !c.constant(s.Values[i], fd, depth) {
						ok = false
					}
				}
			}
		}
		return true
	})
	return ok && seen
}

// callersPassConstant reports whether every call of fd in the package passes a constant
// as its parameter i, and there is at least one.
func (c *logChecker) callersPassConstant(fd *ast.FuncDecl, i, depth int) bool {
	ok, seen := true, false
	for _, caller := range c.funcs {
		ast.Inspect(caller.Body, func(n ast.Node) bool {
			call, isCall := n.(*ast.CallExpr)
			if !isCall {
				return true
			}
			var name string
			switch f := call.Fun.(type) {
			case *ast.Ident:
				name = f.Name
			case *ast.SelectorExpr:
				name = f.Sel.Name
			case *ast.IndexExpr: // a generic function called with its type
				if sel, isSel := f.X.(*ast.SelectorExpr); isSel {
					name = sel.Sel.Name
				}
			}
			if name != fd.Name.Name || len(call.Args) <= i {
				return true
			}
			seen = true
			if !c.constant(call.Args[i], caller, depth) {
				ok = false
			}
			return true
		})
	}
	return ok && seen
}
