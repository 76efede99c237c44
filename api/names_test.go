package api_test

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// invisibleRunes are characters that make a name read differently from
// what it is: bidirectional overrides and isolates, zero-width characters,
// other format characters, separators, private-use and default-ignorable
// fillers.
var invisibleRunes = []rune{
	0x202E,  // RIGHT-TO-LEFT OVERRIDE
	0x202A,  // LEFT-TO-RIGHT EMBEDDING
	0x2066,  // LEFT-TO-RIGHT ISOLATE
	0x2067,  // RIGHT-TO-LEFT ISOLATE
	0x2068,  // FIRST STRONG ISOLATE
	0x2069,  // POP DIRECTIONAL ISOLATE
	0x200B,  // ZERO WIDTH SPACE
	0x200D,  // ZERO WIDTH JOINER
	0x200E,  // LEFT-TO-RIGHT MARK
	0x2060,  // WORD JOINER
	0xFEFF,  // ZERO WIDTH NO-BREAK SPACE (byte-order mark)
	0x00AD,  // SOFT HYPHEN
	0x061C,  // ARABIC LETTER MARK
	0xE0041, // TAG LATIN CAPITAL LETTER A
	0x2028,  // LINE SEPARATOR
	0x2029,  // PARAGRAPH SEPARATOR
	0xE000,  // private use
	0x3164,  // HANGUL FILLER
	0x034F,  // COMBINING GRAPHEME JOINER
	0x0007,  // BEL (a control character)
}

func TestRules_NamesRefuseInvisibleCharacters(t *testing.T) {
	e := newEnv(t)
	for _, r := range invisibleRunes {
		t.Run(fmt.Sprintf("U+%04X", r), func(t *testing.T) {
			want := fmt.Sprintf("found U+%04X", r)
			for _, field := range []string{"name", "workflow_slug"} {
				b := ruleBody("https://hooks.example.com/x")
				b[field] = "billing" + string(r) + "fdp.exe"
				resp := e.do(asUser(ownerA), http.MethodPost, "/api/alerts/config", b)
				require.Equal(t, http.StatusUnprocessableEntity, resp.status, "%s: %s", field, resp.raw)
				assert.Equal(t, "validation_failed", resp.str("error", "code"))
				assert.Contains(t, resp.fields()[field], "must not contain control, formatting or invisible characters", field)
				assert.Contains(t, resp.fields()[field], want, field)

				// A preview holds the names it is given to the same rule.
				resp = e.do(asUser(ownerA), http.MethodPost, "/api/alerts/preview", map[string]any{field: b[field]})
				require.Equal(t, http.StatusUnprocessableEntity, resp.status, "preview %s: %s", field, resp.raw)
				assert.Contains(t, resp.fields()[field], want, field)
			}
			// A workflow named in the path.
			resp := e.do(asOperator, http.MethodGet, "/api/alerts/config/"+url.PathEscape("billing"+string(r)), nil)
			require.Equal(t, http.StatusBadRequest, resp.status, "%s", resp.raw)
			assert.Contains(t, resp.fields()["workflow"], want)
		})
	}

	// An update is checked like a create.
	id, _ := e.createRule(asUser(ownerA), ruleBody("https://hooks.example.com/x"))
	upd := ruleBody("https://hooks.example.com/x")
	upd["id"], upd["name"] = id, "Billing \u202Efdp.exe"
	resp := e.do(asUser(ownerA), http.MethodPost, "/api/alerts/config", upd)
	require.Equal(t, http.StatusUnprocessableEntity, resp.status, "%s", resp.raw)
	assert.Contains(t, resp.fields()["name"], "U+202E")

	var n int
	e.queryRow(`select count(*) from public.alert_configs where name <> 'Page on billing failures'`, nil, &n)
	assert.Zero(t, n, "no refused name was stored")

	// Names in any script, with emoji (variation selectors included) and
	// ordinary spaces, are fine.
	for _, name := range []string{"Сбой оплаты", "請求の失敗", "فشل الدفع", "⚠️ Billing\u00a0failures", "Ödeme hatası ✅"} {
		b := ruleBody("https://hooks.example.com/x")
		b["name"] = name
		resp := e.do(asUser(ownerA), http.MethodPost, "/api/alerts/config", b)
		require.Equal(t, http.StatusCreated, resp.status, "%q: %s", name, resp.raw)
		assert.Equal(t, name, resp.str("rule", "name"))
	}
}
