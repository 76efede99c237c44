package alerts

import (
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"weak"
)

// templateKind says what a template renders, which decides how it is checked.
type templateKind uint8

const (
	kindURL     templateKind = iota // webhook_url: an absolute http(s) URL
	kindPayload                     // payload_template: a JSON document
)

func (k templateKind) name() string {
	if k == kindURL {
		return "webhook_url"
	}
	return "payload_template"
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
