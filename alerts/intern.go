package alerts

import (
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"text/template/parse"
	"weak"
)

// templateKind says what a template renders, which decides how it is checked.
type templateKind uint8

const (
	kindURL     templateKind = iota // webhook_url: an absolute http(s) URL
	kindPayload                     // payload_template: a JSON document
	// kindAction is one action of a split webhook_url or payload_template,
	// shared by every source that has it; only the whole is checked.
	kindURLAction
	kindPayloadAction
)

func (k templateKind) name() string {
	switch k {
	case kindURL, kindURLAction:
		return "webhook_url"
	default:
		return "payload_template"
	}
}

// action is the kind of the actions of a split template of kind k.
func (k templateKind) action() templateKind {
	if k == kindURL {
		return kindURLAction
	}
	return kindPayloadAction
}

type internKey struct {
	kind templateKind
	src  string
}

// interned maps template sources to their one shared, checked Template.
// Entries are weak: a template no rule uses any more is collected and its
// entry removed, so the table never outgrows the live rule set. Templates
// that fail their check are not kept.
var interned = struct {
	sync.Mutex
	m map[internKey]weak.Pointer[Template]
}{m: map[internKey]weak.Pointer[Template]{}}

// internTemplate returns the checked template of src, or why it cannot be
// used. Rules sharing a source share one parse tree and one check; a static
// source (no "{{") is checked but never parsed nor kept in the table (such
// URLs are mostly unique).
func internTemplate(kind templateKind, src string) (*Template, error) {
	if isStaticSource(src) {
		return checked(kind, &Template{src: src})
	}
	k := internKey{kind, src}
	if t := lookupInterned(k); t != nil {
		return t, nil
	}
	if segs, ok := splitTemplate(kind, src); ok {
		// Sources that differ only in their literal text share their
		// actions' parse trees and keep just the text. Like static
		// sources they are mostly unique: checked, not kept in the table.
		return checked(kind, &Template{src: src, segs: segs})
	}
	// Parse and check outside the lock: checking renders the template.
	t, err := ParseTemplate(kind.name(), src)
	if err != nil {
		return nil, err
	}
	if t, err = checked(kind, t); err != nil {
		return nil, err
	}
	interned.Lock()
	defer interned.Unlock()
	if wp, ok := interned.m[k]; ok {
		if existing := wp.Value(); existing != nil {
			return existing, nil // another caller won the race
		}
	}
	interned.m[k] = weak.Make(t)
	runtime.AddCleanup(t, forgetInterned, k)
	return t, nil
}

// checked checks t as kind and marks it checked.
func checked(kind templateKind, t *Template) (*Template, error) {
	if err := checkTemplate(kind, t); err != nil {
		return nil, err
	}
	t.checked = true
	return t, nil
}

func lookupInterned(k internKey) *Template {
	interned.Lock()
	defer interned.Unlock()
	if wp, ok := interned.m[k]; ok {
		return wp.Value()
	}
	return nil
}

// forgetInterned drops k's entry once its template was collected (unless a
// new template was interned under k meanwhile).
func forgetInterned(k internKey) {
	interned.Lock()
	defer interned.Unlock()
	if wp, ok := interned.m[k]; ok && wp.Value() == nil {
		delete(interned.m, k)
	}
}

// checkTemplate renders t against SampleContext the way kind is rendered
// when an alert fires.
func checkTemplate(kind templateKind, t *Template) error {
	sample := SampleContext()
	switch kind {
	case kindURLAction, kindPayloadAction:
		return nil // checked as part of the whole
	case kindURL:
		_, err := t.RenderURL(sample)
		return err
	default:
		b, err := t.Render(sample)
		if err != nil {
			return err
		}
		if !json.Valid(b) {
			return fmt.Errorf("payload template rendered invalid JSON (use the json function for values): %s", excerpt(b, 120))
		}
		return nil
	}
}

// splitTemplate splits src at its top-level actions when that renders the
// same as the whole: src mixes literal text with actions, and has no
// control structure ({{if}}, {{range}}, {{with}}, {{template}}, {{define}},
// {{block}}) and no variable, whose meaning spans actions.
func splitTemplate(kind templateKind, src string) ([]segment, bool) {
	// The source as written: the actions are re-parsed (and bounded) one
	// by one below.
	whole, err := parseRaw(kind.name(), src)
	if err != nil || whole.Tree == nil || len(whole.Templates()) != 1 {
		return nil, false
	}
	nodes := whole.Tree.Root.Nodes
	texts, actions := 0, 0
	for _, n := range nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			texts++
		case *parse.ActionNode:
			if n.Pipe == nil || len(n.Pipe.Decl) > 0 || n.Pipe.IsAssign || usesVariables(n.Pipe) {
				return nil, false
			}
			actions++
		default:
			return nil, false
		}
	}
	if texts == 0 || actions == 0 {
		return nil, false // a lone action is the shared unit itself
	}
	segs := make([]segment, len(nodes))
	for i, n := range nodes {
		if n, ok := n.(*parse.TextNode); ok {
			segs[i].text = textOf(src, n)
			continue
		}
		a, err := internTemplate(kind.action(), n.String())
		if err != nil || a.t == nil {
			return nil, false
		}
		segs[i].act = a
	}
	return segs, true
}

// textOf is a text node's text, as a slice of src when src holds it as it
// is at the node's position (no trim marker took spaces off), so that a
// split template does not keep a second copy of its literal text.
func textOf(src string, n *parse.TextNode) string {
	start := int(n.Pos)
	if end := start + len(n.Text); start >= 0 && end <= len(src) && src[start:end] == string(n.Text) {
		return src[start:end]
	}
	return string(n.Text)
}

// usesVariables reports whether a pipeline refers to a variable other than
// $ (the data), which only the whole template can resolve.
func usesVariables(p *parse.PipeNode) bool {
	found := false
	var walk func(parse.Node)
	walk = func(n parse.Node) {
		switch n := n.(type) {
		case *parse.VariableNode:
			if len(n.Ident) > 0 && n.Ident[0] != "$" {
				found = true
			}
		case *parse.PipeNode:
			for _, c := range n.Cmds {
				walk(c)
			}
		case *parse.CommandNode:
			for _, a := range n.Args {
				walk(a)
			}
		case *parse.ChainNode:
			walk(n.Node)
		}
	}
	walk(p)
	return found
}
