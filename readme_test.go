package main

import (
	"go/scanner"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// outsideMessages are texts the troubleshooting table (docs/operations.md)
// quotes that
// come from outside this repository: other programs, Go's standard
// library, the operating system.
var outsideMessages = map[string]string{
	"curl: (35)":           "curl",
	"wrong version number": "curl (OpenSSL)",
	"Client sent an HTTP request to an HTTPS server": "Go's net/http",
	"permission denied":        "the operating system",
	"connection reset by peer": "the operating system",
}

// Every message the troubleshooting table (docs/operations.md) quotes is
// one the daemon, its scripts or its tests can print: an operator
// searching the table for a line from the log finds it. (One quoted there
// no longer existed: "… names no configuration key".) A quote's "…" stands
// for a part that varies; each part between them must appear in the
// sources, as written or with one word standing for a format verb (%s, %d,
// %q, %v).
func TestDocsTroubleshootingQuotesExist(t *testing.T) {
	raw, err := os.ReadFile("docs/operations.md")
	require.NoError(t, err)
	page := string(raw)
	start := strings.Index(page, "\n## Troubleshooting\n")
	require.NotEqual(t, -1, start)
	section := page[start+1:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	corpus := sourceStrings(t)

	quote := regexp.MustCompile("`([^`]+)`")
	checked := 0
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "| symptom") {
			continue
		}
		symptom, _, _ := strings.Cut(line[2:], " | ")
		for _, m := range quote.FindAllStringSubmatch(symptom, -1) {
			for _, part := range strings.Split(m[1], "…") {
				part = strings.Trim(part, " :")
				if len(part) < 4 || outsideMessages[part] != "" {
					continue
				}
				checked++
				assert.True(t, inSources(corpus, part), "the troubleshooting table quotes %q (in %q), which nothing prints", part, m[1])
			}
		}
	}
	assert.Greater(t, checked, 30, "the table was read")
}

// inSources reports whether part appears in corpus as written, or with one
// of its words standing for a format verb.
func inSources(corpus, part string) bool {
	if strings.Contains(corpus, part) {
		return true
	}
	words := strings.Fields(part)
	for i := range words {
		for _, verb := range []string{"%s", "%d", "%q", "%v"} {
			w := append(append(append([]string(nil), words[:i]...), verb), words[i+1:]...)
			if strings.Contains(corpus, strings.Join(w, " ")) {
				return true
			}
		}
	}
	return false
}

// sourceStrings returns the string literals of the module's Go files (tests
// included: the browser tests print some of the quoted messages) and the
// text of its shell and JavaScript files, joined by newlines.
func sourceStrings(t *testing.T) string {
	var b strings.Builder
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); name == "node_modules" || name == "testdata" || (strings.HasPrefix(name, ".") && path != ".") {
				return filepath.SkipDir
			}
			return nil
		}
		switch ext := filepath.Ext(path); {
		case ext == ".go":
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			var s scanner.Scanner
			fset := token.NewFileSet()
			s.Init(fset.AddFile(path, -1, len(src)), src, nil, 0)
			for {
				_, tok, lit := s.Scan()
				if tok == token.EOF {
					break
				}
				if tok == token.STRING {
					if v, err := strconv.Unquote(lit); err == nil {
						b.WriteString(v)
						b.WriteByte('\n')
					}
				}
			}
		case ext == ".sh" || ext == ".mjs" || ext == ".js" || strings.HasPrefix(path, ".ci/"):
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			b.Write(src)
			b.WriteByte('\n')
		}
		return nil
	})
	require.NoError(t, err)
	return b.String()
}
