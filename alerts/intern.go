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
// entry removed, so the table never outgrows the live rule set.
var interned = struct {
	sync.Mutex
	m map[internKey]weak.Pointer[Template]
}{m: map[internKey]weak.Pointer[Template]{}}

// internTemplate returns the checked template of src. Rules sharing a source
// share one parse tree and one check; a static source (no "{{") is checked
// but never parsed nor kept in the table (such URLs are mostly unique). The
// result's checkErr says why the template is unusable, if it is.
func internTemplate(kind templateKind, src string) *Template {
	if isStaticSource(src) {
		t := &Template{src: src}
		t.checkErr, t.checked = checkTemplate(kind, t), true
		return t
	}
	k := internKey{kind, src}
	if t := lookupInterned(k); t != nil {
		return t
	}
	if segs, ok := splitTemplate(kind, src); ok {
		// Sources that differ only in their literal text share their
		// actions' parse trees and keep just the text. Like static
		// sources they are mostly unique: checked, not kept in the table.
		t := &Template{src: src, segs: segs}
		t.checkErr, t.checked = checkTemplate(kind, t), true
		return t
	}
	// Parse and check outside the lock: checking renders the template.
	t, err := ParseTemplate(kind.name(), src)
	if err != nil {
		t = &Template{src: src, checkErr: err}
	} else {
		t.checkErr = checkTemplate(kind, t)
	}
	t.checked = true
	interned.Lock()
	defer interned.Unlock()
	if wp, ok := interned.m[k]; ok {
		if existing := wp.Value(); existing != nil {
			return existing // another caller won the race
		}
	}
	interned.m[k] = weak.Make(t)
	runtime.AddCleanup(t, forgetInterned, k)
	return t
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
	whole, err := ParseTemplate(kind.name(), src)
	if err != nil || whole.t == nil || whole.t.Tree == nil || len(whole.t.Templates()) != 1 {
		return nil, false
	}
	var segs []segment
	texts, actions := 0, 0
	for _, n := range whole.t.Tree.Root.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			texts++
			segs = append(segs, segment{text: string(n.Text)})
		case *parse.ActionNode:
			if n.Pipe == nil || len(n.Pipe.Decl) > 0 || n.Pipe.IsAssign || usesVariables(n.Pipe) {
				return nil, false
			}
			actions++
			segs = append(segs, segment{src: n.String()})
		default:
			return nil, false
		}
	}
	if texts == 0 || actions == 0 {
		return nil, false
	}
	for i := range segs {
		if segs[i].src == "" {
			continue
		}
		a := internTemplate(kind.action(), segs[i].src)
		if a.t == nil || a.checkErr != nil {
			return nil, false
		}
		segs[i] = segment{act: a}
	}
	return segs, true
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
