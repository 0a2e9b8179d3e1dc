package main

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// A mutant names where its edits go by package and declaration, not by
// file: code moved between the files of a package, or around them, keeps
// its mutants. fn is a function ("take"), a method ("Consumer.take"), a
// type, const or var name, or "file:name.go" for a whole file (an import).

// locate returns the file of dir's package that declares fn, its text
// (edited, if an earlier edit of the mutant changed it), and the byte
// range of the declaration in it.
func locate(dir, fn string, edited map[string][]byte) (string, []byte, int, int, error) {
	read := func(p string) ([]byte, error) {
		if b, ok := edited[p]; ok {
			return b, nil
		}
		return os.ReadFile(p)
	}
	if f, ok := strings.CutPrefix(fn, "file:"); ok {
		p := filepath.Join(dir, f)
		src, err := read(p)
		return p, src, 0, len(src), err
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return "", nil, 0, 0, err
	}
	sort.Strings(files)
	type hit struct {
		path       string
		src        []byte
		start, end int
	}
	var hits []hit
	fset := token.NewFileSet()
	for _, p := range files {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		if ok, err := build.Default.MatchFile(dir, filepath.Base(p)); err != nil || !ok {
			continue // not built here (build constraints)
		}
		src, err := read(p)
		if err != nil {
			return "", nil, 0, 0, err
		}
		f, err := parser.ParseFile(fset, p, src, parser.SkipObjectResolution)
		if err != nil {
			return "", nil, 0, 0, fmt.Errorf("parsing %s: %w", p, err)
		}
		for _, d := range f.Decls {
			if declares(d, fn) {
				end := fset.Position(d.End()).Offset
				if end < len(src) && src[end] == '\n' {
					end++ // the line's end, which edits may match
				}
				hits = append(hits, hit{p, src, fset.Position(d.Pos()).Offset, end})
			}
		}
	}
	switch len(hits) {
	case 0:
		return "", nil, 0, 0, fmt.Errorf("no declaration %q in %s", fn, dir)
	case 1:
		h := hits[0]
		return h.path, h.src, h.start, h.end, nil
	}
	return "", nil, 0, 0, fmt.Errorf("%d declarations %q in %s (name the receiver: T.M)", len(hits), fn, dir)
}

// declares says whether d declares fn.
func declares(d ast.Decl, fn string) bool {
	switch d := d.(type) {
	case *ast.FuncDecl:
		name := d.Name.Name
		if d.Recv != nil && len(d.Recv.List) == 1 {
			if recv := recvName(d.Recv.List[0].Type); recv != "" && fn == recv+"."+name {
				return true
			}
		}
		return fn == name
	case *ast.GenDecl:
		for _, s := range d.Specs {
			switch s := s.(type) {
			case *ast.TypeSpec:
				if s.Name.Name == fn {
					return true
				}
			case *ast.ValueSpec:
				for _, n := range s.Names {
					if n.Name == fn {
						return true
					}
				}
			}
		}
	}
	return false
}

func recvName(e ast.Expr) string {
	for {
		switch t := e.(type) {
		case *ast.StarExpr:
			e = t.X
		case *ast.IndexExpr:
			e = t.X
		case *ast.IndexListExpr:
			e = t.X
		case *ast.Ident:
			return t.Name
		default:
			return ""
		}
	}
}

// apply returns the files m edits, under root, with their text after
// m's edits: each must occur exactly once inside its declaration.
func apply(root string, m mutant) (map[string][]byte, error) {
	edited := map[string][]byte{}
	for _, e := range m.edits {
		fn := e.fn
		if fn == "" {
			fn = m.fn
		}
		path, src, start, end, err := locate(filepath.Join(root, m.pkg), fn, edited)
		if err != nil {
			return nil, fmt.Errorf("mutant no longer applies: %w (update scripts/mutants)", err)
		}
		decl := src[start:end]
		if n := bytes.Count(decl, []byte(e.old)); n != 1 {
			return nil, fmt.Errorf("mutant no longer applies: %q occurs %d times in %s %s (update scripts/mutants)", e.old, n, m.pkg, fn)
		}
		decl = bytes.Replace(decl, []byte(e.old), []byte(e.new), 1)
		edited[path] = append(append(append([]byte(nil), src[:start]...), decl...), src[end:]...)
	}
	return edited, nil
}
