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

// The README is the front page: its quick start's first commands are the
// demo and the whole test suite (.ci/run and other tooling run the second
// one, scripts/test.sh), and it links every page under docs/.
func TestReadmeFrontPage(t *testing.T) {
	raw, err := os.ReadFile("README.md")
	require.NoError(t, err)
	readme := string(raw)
	start := strings.Index(readme, "```sh\n")
	require.NotEqual(t, -1, start, "the README has a sh block")
	block, _, ok := strings.Cut(readme[start+len("```sh\n"):], "```")
	require.True(t, ok)
	var commands []string
	for _, line := range strings.Split(strings.TrimSpace(block), "\n") {
		command, _, _ := strings.Cut(line, "#")
		commands = append(commands, strings.TrimSpace(command))
	}
	assert.Equal(t, []string{"scripts/demo.sh", "scripts/test.sh"}, commands, "the quick start's commands")

	pages, err := filepath.Glob("docs/*.md")
	require.NoError(t, err)
	require.NotEmpty(t, pages)
	for _, page := range pages {
		assert.Contains(t, readme, "]("+filepath.ToSlash(page)+")", "the README links %s", page)
	}
}

// Every relative link in README.md and docs/*.md names a file or directory
// that exists, and every #anchor a heading of the page it points into
// (GitHub's anchors: lower case, punctuation dropped, spaces as hyphens).
func TestDocsLinksResolve(t *testing.T) {
	pages, err := filepath.Glob("docs/*.md")
	require.NoError(t, err)
	pages = append([]string{"README.md"}, pages...)
	checked := 0
	for _, page := range pages {
		raw, err := os.ReadFile(page)
		require.NoError(t, err)
		for _, target := range markdownLinks(string(raw)) {
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			checked++
			path, anchor, _ := strings.Cut(target, "#")
			file := page
			if path != "" {
				file = filepath.Join(filepath.Dir(page), filepath.FromSlash(path))
				if _, err := os.Stat(file); err != nil {
					t.Errorf("%s links %q: %s does not exist", page, target, file)
					continue
				}
			}
			if anchor == "" {
				continue
			}
			if filepath.Ext(file) != ".md" {
				t.Errorf("%s links %q: an anchor into a file that is not Markdown", page, target)
				continue
			}
			text, err := os.ReadFile(file)
			require.NoError(t, err)
			if !markdownAnchors(string(text))[anchor] {
				t.Errorf("%s links %q: %s has no heading with anchor #%s", page, target, file, anchor)
			}
		}
	}
	assert.Greater(t, checked, 30, "the links were read")
}

var (
	markdownLink  = regexp.MustCompile(`\]\(([^()\s]+)\)`)
	inlineCode    = regexp.MustCompile("`[^`\n]*`")
	anchorDropped = regexp.MustCompile(`[^\p{L}\p{N}_\- ]`)
)

// markdownLinks returns the targets of the inline links in a Markdown
// text, outside code blocks and code spans.
func markdownLinks(text string) []string {
	var out []string
	for _, line := range markdownProse(text) {
		for _, m := range markdownLink.FindAllStringSubmatch(inlineCode.ReplaceAllString(line, ""), -1) {
			out = append(out, m[1])
		}
	}
	return out
}

// markdownAnchors returns the anchors GitHub gives the headings of a
// Markdown text: the heading's text without code marks, in lower case,
// with punctuation dropped and spaces turned into hyphens; a repeated
// anchor gets -1, -2, ….
func markdownAnchors(text string) map[string]bool {
	anchors := make(map[string]bool)
	seen := make(map[string]int)
	for _, line := range markdownProse(text) {
		heading := strings.TrimLeft(line, "#")
		if heading == line || !strings.HasPrefix(heading, " ") {
			continue
		}
		a := strings.ToLower(strings.TrimSpace(heading))
		a = strings.ReplaceAll(anchorDropped.ReplaceAllString(a, ""), " ", "-")
		if n := seen[a]; n > 0 {
			anchors[a+"-"+strconv.Itoa(n)] = true
		} else {
			anchors[a] = true
		}
		seen[a]++
	}
	return anchors
}

// markdownProse returns the lines of a Markdown text outside fenced code
// blocks.
func markdownProse(text string) []string {
	var out []string
	fenced := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if !fenced {
			out = append(out, line)
		}
	}
	return out
}
