package alerts

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
	"time"
)

// A tenant writes the templates, so a template must not be able to spend
// the daemon's CPU or memory. Rendering is bounded by construction:
//
//   - When a template is parsed, its tree is checked and rewritten. Every
//     range body starts with a hidden step that charges the body's size to
//     the render's budget, so loops, nested or not, stop after maxSteps
//     nodes in all. Every function that builds a string (printf, print,
//     println, html, js, json, upper, lower, urlquery, pathquote, time) is
//     called with the render's context first, and charges what it builds,
//     estimated before it builds it, to a budget of maxAllocBytes over the
//     whole render, so no string can grow without bound, even in a
//     variable. printf widths and precisions are capped. {{define}},
//     {{template}} and {{block}} are refused (no recursion), and so are the
//     data's methods that build strings from arguments (time.Time.Format
//     and its kind: use the time function), and redeclaring $.
//   - Rendering runs on the caller's goroutine, checks a deadline as it
//     charges steps, and writes into a buffer capped at MaxPayloadBytes: when
//     Render returns, nothing of it is still running.
//
// Everything else a template can do (field and map access, index, slice,
// len, comparisons) costs time proportional to the data and to the steps
// already counted.
const (
	// maxSteps bounds the template nodes one render may execute inside
	// range loops (the nodes outside loops are bounded by the source).
	maxSteps = 10_000
	// maxAllocBytes bounds the bytes the string-building functions of one
	// render may produce in all, garbage included.
	maxAllocBytes = 4 << 20
	// maxSourceBytes caps a template's source.
	maxSourceBytes = 64 << 10
	// maxRangeLiteral caps a range over an integer literal, refused at
	// parse time rather than when the budget runs out.
	maxRangeLiteral = maxSteps
	// maxFormatWidth caps printf widths and precisions.
	maxFormatWidth = 1_000
)

// errBudget is wrapped by every error of a render that ran out of budget.
var errBudget = errors.New("template exceeded its render budget")

// budget is one render's allowance.
type budget struct {
	steps    int
	bytes    int
	deadline time.Time
	name     string
}

func (b *budget) step(n int) error {
	b.steps += n
	if b.steps > maxSteps {
		return fmt.Errorf("%w: more than %d steps in loops", errBudget, maxSteps)
	}
	return b.clock()
}

func (b *budget) clock() error {
	if time.Now().After(b.deadline) {
		return fmt.Errorf("%w: took longer than %s to render", errBudget, renderTimeout)
	}
	return nil
}

// reserve checks that n more bytes fit, before they are built.
func (b *budget) reserve(n int) error {
	if n < 0 || b.bytes+n > maxAllocBytes {
		return fmt.Errorf("%w: its functions would build more than %d bytes", errBudget, maxAllocBytes)
	}
	return b.clock()
}

// charge counts n bytes that were built.
func (b *budget) charge(n int) { b.bytes += n }

// budgetOf returns the budget of the render c belongs to. A context that is not
// being rendered by Render (a template executed some other way) gets an
// exhausted budget, so nothing runs unbounded by mistake.
func budgetOf(c *Context) *budget {
	if c == nil || c.budget == nil {
		return &budget{steps: maxSteps + 1, bytes: maxAllocBytes + 1}
	}
	return c.budget
}

// stepFunc is the name of the step charged at the top of each range body;
// the rewrite refuses it in a template's own source.
const stepFunc = "_step"

// builders are the functions that build strings; each is called with the
// render's context as its first argument after the rewrite.
var builders = map[string]bool{
	"printf": true, "print": true, "println": true, "html": true, "js": true,
	"json": true, "upper": true, "lower": true, "urlquery": true, "pathquote": true, "time": true,
}

// funcs are the functions templates may call, as the rewritten tree calls
// them. The names are the documented ones; builtins of text/template that
// build strings are replaced by bounded versions.
var funcs = template.FuncMap{
	stepFunc: func(c *Context, n int) (string, error) { return "", budgetOf(c).step(n) },
	"printf": boundedPrintf,
	"print": func(c *Context, args ...any) (string, error) {
		return boundedVariadic(c, 1, fmt.Sprint, args)
	},
	"println": func(c *Context, args ...any) (string, error) {
		return boundedVariadic(c, 1, fmt.Sprintln, args)
	},
	"html": func(c *Context, args ...any) (string, error) {
		return boundedVariadic(c, 6, template.HTMLEscaper, args)
	},
	"js": func(c *Context, args ...any) (string, error) {
		return boundedVariadic(c, 6, template.JSEscaper, args)
	},
	// json renders any value as JSON, so string values are always escaped.
	"json": func(c *Context, v any) (string, error) {
		b := budgetOf(c)
		if err := b.reserve(6*approxSize(v, maxAllocBytes) + 2); err != nil {
			return "", err
		}
		s, err := jsonString(v)
		b.charge(len(s))
		return s, err
	},
	// default returns def when v is empty.
	"default": func(def, v any) any {
		if v == nil || v == "" {
			return def
		}
		return v
	},
	// time formats a time with a Go layout (default RFC 3339).
	"time": func(c *Context, layout string, t any) (string, error) {
		b := budgetOf(c)
		if err := b.reserve(3*len(layout) + 64); err != nil {
			return "", err
		}
		s, err := formatTime(layout, t)
		b.charge(len(s))
		return s, err
	},
	"upper":     boundedString(strings.ToUpper),
	"lower":     boundedString(strings.ToLower),
	"urlquery":  boundedString(url.QueryEscape),
	"pathquote": boundedString(url.PathEscape),
}

// boundedString wraps a string function whose output is at most three
// times its input (case mapping, percent-encoding).
func boundedString(f func(string) string) func(*Context, string) (string, error) {
	return func(c *Context, s string) (string, error) {
		b := budgetOf(c)
		if err := b.reserve(3 * len(s)); err != nil {
			return "", err
		}
		out := f(s)
		b.charge(len(out))
		return out, nil
	}
}

// boundedVariadic wraps a function of any values (print, println, html,
// js) whose output is at most factor times the printed size of its
// arguments, plus a separator each.
func boundedVariadic(c *Context, factor int, f func(...any) string, args []any) (string, error) {
	b := budgetOf(c)
	n := 0
	for _, a := range args {
		n += factor*approxSize(a, maxAllocBytes) + 1
	}
	if err := b.reserve(n); err != nil {
		return "", err
	}
	s := f(args...)
	b.charge(len(s))
	return s, nil
}

// boundedPrintf is printf with its output estimated before it is built:
// widths and precisions are capped, and each verb is counted at four times
// the largest argument (%q of bytes that need escaping) plus its width.
func boundedPrintf(c *Context, format string, args ...any) (string, error) {
	b := budgetOf(c)
	verbs, widths, indexed, err := scanFormat(format)
	if err != nil {
		return "", err
	}
	n := len(format) + widths
	if indexed {
		largest := 0
		for _, a := range args {
			largest = max(largest, approxSize(a, maxAllocBytes))
		}
		n += (verbs + len(args)) * (4*largest + 16)
	} else {
		for _, a := range args {
			n += 4*approxSize(a, maxAllocBytes) + 16
		}
	}
	if err := b.reserve(n); err != nil {
		return "", err
	}
	s := fmt.Sprintf(format, args...)
	b.charge(len(s))
	return s, nil
}

// scanFormat counts a printf format's verbs and sums their widths and
// precisions, refusing '*' (a width taken from the data) and widths over
// maxFormatWidth.
func scanFormat(format string) (verbs, widths int, indexed bool, err error) {
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		i++
		if i < len(format) && format[i] == '%' {
			continue
		}
		verbs++
		// Flags, argument indexes, width, precision; then the verb.
		num := -1
		for ; i < len(format); i++ {
			ch := format[i]
			switch {
			case ch >= '0' && ch <= '9':
				if num < 0 {
					num = 0
				}
				num = num*10 + int(ch-'0')
				if num > maxFormatWidth {
					return 0, 0, false, fmt.Errorf("printf: width or precision over %d in %q", maxFormatWidth, excerpt([]byte(format), 60))
				}
				continue
			case ch == '*':
				return 0, 0, false, fmt.Errorf("printf: '*' width or precision is not allowed in %q", excerpt([]byte(format), 60))
			case ch == '[':
				indexed = true
				num = -1
				continue
			case ch == ']' || ch == '.' || ch == '+' || ch == '-' || ch == '#' || ch == ' ':
				if num > 0 && ch != ']' {
					widths += num
				}
				num = -1
				continue
			}
			break
		}
		if num > 0 {
			widths += num
		}
	}
	return verbs, widths, indexed, nil
}

// approxSize bounds, from above and roughly, the printed size of a value
// the template holds: strings and bytes by their length, the run's JSON
// values by their contents. It stops counting past limit.
func approxSize(v any, limit int) int {
	switch x := v.(type) {
	case nil:
		return 5
	case string:
		return len(x)
	case []byte:
		return 4 * len(x) // %v prints bytes as decimal numbers
	case bool:
		return 5
	case map[string]any:
		n := 2
		for k, e := range x {
			n += len(k) + 4 + approxSize(e, limit-n)
			if n > limit {
				return n
			}
		}
		return n
	case []any:
		n := 2
		for _, e := range x {
			n += approxSize(e, limit-n) + 1
			if n > limit {
				return n
			}
		}
		return n
	case []Event:
		n := 2
		for _, e := range x {
			n += len(e) + 3
		}
		return n
	case Event:
		return len(x)
	case *Context:
		if x == nil {
			return 5
		}
		return 1024 + approxSize(x.Run, limit) + len(x.LinkBase) + len(x.Link) + len(x.Workflow.Name) + len(x.Workflow.Slug) + len(x.Rule.Name)
	case WorkflowInfo:
		return 64 + len(x.ID) + len(x.Slug) + len(x.Name)
	case RuleInfo:
		return 16 + len(x.ID) + len(x.Name)
	}
	// Numbers, times, durations and the small info structs.
	return 64
}

// formatTime is the time function's body.
func formatTime(layout string, t any) (string, error) {
	var tt time.Time
	switch x := t.(type) {
	case time.Time:
		tt = x
	case *time.Time:
		if x == nil {
			return "", nil
		}
		tt = *x
	case string:
		p, err := ParseTimestamp(x)
		if err != nil {
			return "", err
		}
		tt = p
	default:
		return "", fmt.Errorf("time: want a time, got %T", t)
	}
	if layout == "" {
		layout = time.RFC3339
	}
	return tt.UTC().Format(layout), nil
}

// forbiddenMethods are the methods of the data that build a string from
// their arguments (time.Time's Format and Append*), and so could grow a
// value without the budget seeing it. Found by reflection over the types
// a template reaches, so a new field cannot add one unnoticed.
var forbiddenMethods = func() map[string]bool {
	m := map[string]bool{}
	seen := map[reflect.Type]bool{}
	var visit func(reflect.Type)
	visit = func(t reflect.Type) {
		if seen[t] {
			return
		}
		seen[t] = true
		for _, tt := range []reflect.Type{t, reflect.PointerTo(t)} {
			for i := range tt.NumMethod() {
				meth := tt.Method(i)
				if meth.Type.NumIn() > 1 && buildsString(meth.Type) {
					m[meth.Name] = true
				}
			}
		}
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
			visit(t.Elem())
		case reflect.Struct:
			for i := range t.NumField() {
				if f := t.Field(i); f.IsExported() {
					visit(f.Type)
				}
			}
		}
	}
	visit(reflect.TypeFor[Context]())
	visit(reflect.TypeFor[time.Location]())
	return m
}()

// buildsString reports whether a method type returns a string or a slice.
func buildsString(t reflect.Type) bool {
	for i := range t.NumOut() {
		switch t.Out(i).Kind() {
		case reflect.String, reflect.Slice:
			return true
		}
	}
	return false
}

// bound checks a parsed template and rewrites it to run within budget.
func bound(t *template.Template) error {
	if len(t.Templates()) > 1 {
		return errors.New("{{define}} and {{block}} are not supported")
	}
	if t.Tree == nil || t.Tree.Root == nil {
		return nil
	}
	return (&rewriter{}).list(t.Tree.Root)
}

type rewriter struct{}

func (rw *rewriter) list(l *parse.ListNode) error {
	if l == nil {
		return nil
	}
	for _, n := range l.Nodes {
		if err := rw.node(n); err != nil {
			return err
		}
	}
	return nil
}

func (rw *rewriter) node(n parse.Node) error {
	switch n := n.(type) {
	case *parse.ActionNode:
		return rw.pipe(n.Pipe)
	case *parse.IfNode:
		return rw.branch(&n.BranchNode)
	case *parse.WithNode:
		return rw.branch(&n.BranchNode)
	case *parse.RangeNode:
		if err := rw.rangeLimit(n); err != nil {
			return err
		}
		if err := rw.branch(&n.BranchNode); err != nil {
			return err
		}
		// Charge the body's size at the top of every iteration.
		w := weight(n.List)
		step := &parse.ActionNode{NodeType: parse.NodeAction, Pos: n.Position(), Pipe: &parse.PipeNode{
			NodeType: parse.NodePipe, Pos: n.Position(),
			Cmds: []*parse.CommandNode{call(n.Position(), stepFunc, &parse.NumberNode{
				NodeType: parse.NodeNumber, Pos: n.Position(), IsInt: true, IsFloat: true,
				Int64: int64(w), Float64: float64(w), Uint64: uint64(w), IsUint: true, Text: strconv.Itoa(w),
			})},
		}}
		if n.List == nil {
			n.List = &parse.ListNode{NodeType: parse.NodeList, Pos: n.Position()}
		}
		n.List.Nodes = append([]parse.Node{step}, n.List.Nodes...)
		return nil
	case *parse.TemplateNode:
		return errors.New("{{template}} is not supported")
	}
	return nil
}

// rangeLimit refuses a range over an integer literal larger than
// maxRangeLiteral: it could never render within budget.
func (rw *rewriter) rangeLimit(n *parse.RangeNode) error {
	if n.Pipe == nil || len(n.Pipe.Cmds) != 1 || len(n.Pipe.Cmds[0].Args) != 1 {
		return nil
	}
	if num, ok := n.Pipe.Cmds[0].Args[0].(*parse.NumberNode); ok && (!num.IsInt || num.Int64 > maxRangeLiteral) {
		return fmt.Errorf("range over %s: at most %d iterations are allowed", num.Text, maxRangeLiteral)
	}
	return nil
}

func (rw *rewriter) branch(b *parse.BranchNode) error {
	if err := rw.pipe(b.Pipe); err != nil {
		return err
	}
	if err := rw.list(b.List); err != nil {
		return err
	}
	return rw.list(b.ElseList)
}

func (rw *rewriter) pipe(p *parse.PipeNode) error {
	if p == nil {
		return nil
	}
	for _, v := range p.Decl {
		if len(v.Ident) > 0 && v.Ident[0] == "$" {
			return errors.New("$ cannot be declared or assigned")
		}
	}
	for _, c := range p.Cmds {
		if err := rw.command(c); err != nil {
			return err
		}
	}
	return nil
}

func (rw *rewriter) command(c *parse.CommandNode) error {
	for _, a := range c.Args {
		if err := rw.arg(a); err != nil {
			return err
		}
	}
	if len(c.Args) > 0 {
		if id, ok := c.Args[0].(*parse.IdentifierNode); ok {
			if id.Ident == stepFunc {
				return fmt.Errorf("%s is not a function", stepFunc)
			}
			if builders[id.Ident] {
				c.Args = append([]parse.Node{id, dollar(id.Position())}, c.Args[1:]...)
			}
		}
	}
	return nil
}

func (rw *rewriter) arg(a parse.Node) error {
	switch a := a.(type) {
	case *parse.PipeNode:
		return rw.pipe(a)
	case *parse.ChainNode:
		if err := fields(a.Field); err != nil {
			return err
		}
		return rw.arg(a.Node)
	case *parse.FieldNode:
		return fields(a.Ident)
	case *parse.VariableNode:
		if len(a.Ident) > 1 {
			return fields(a.Ident[1:])
		}
	case *parse.IdentifierNode:
		if a.Ident == stepFunc {
			return fmt.Errorf("%s is not a function", stepFunc)
		}
	}
	return nil
}

// fields refuses a field chain that names a forbidden method.
func fields(names []string) error {
	for _, f := range names {
		if forbiddenMethods[f] {
			return fmt.Errorf(".%s is not allowed in templates (use the time function to format times; a run column of that name is read with index .Run %q)", f, f)
		}
	}
	return nil
}

func call(pos parse.Pos, name string, args ...parse.Node) *parse.CommandNode {
	id := parse.NewIdentifier(name).SetPos(pos)
	return &parse.CommandNode{NodeType: parse.NodeCommand, Pos: pos,
		Args: append([]parse.Node{id, dollar(pos)}, args...)}
}

func dollar(pos parse.Pos) *parse.VariableNode {
	return &parse.VariableNode{NodeType: parse.NodeVariable, Pos: pos, Ident: []string{"$"}}
}

// weight is a list's size in nodes, not counting the bodies of nested
// ranges (they charge their own steps), at least 1. Literal text counts a
// node per KiB.
func weight(l *parse.ListNode) int {
	if l == nil {
		return 1
	}
	w := 1
	var walk func(parse.Node)
	walk = func(n parse.Node) {
		switch n := n.(type) {
		case *parse.ListNode:
			if n != nil {
				for _, c := range n.Nodes {
					walk(c)
				}
			}
		case *parse.TextNode:
			w += 1 + len(n.Text)/1024
		case *parse.ActionNode:
			walk(n.Pipe)
		case *parse.IfNode:
			walk(n.Pipe)
			walk(n.List)
			if n.ElseList != nil {
				walk(n.ElseList)
			}
		case *parse.WithNode:
			walk(n.Pipe)
			walk(n.List)
			if n.ElseList != nil {
				walk(n.ElseList)
			}
		case *parse.RangeNode:
			walk(n.Pipe)
			if n.ElseList != nil {
				walk(n.ElseList)
			}
		case *parse.PipeNode:
			if n == nil {
				return
			}
			w++
			for _, c := range n.Cmds {
				for _, a := range c.Args {
					w++
					if p, ok := a.(*parse.PipeNode); ok {
						walk(p)
					}
				}
			}
		default:
			w++
		}
	}
	walk(l)
	return w
}

// jsonString is the json function's body.
func jsonString(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}
