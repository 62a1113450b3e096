package provider

import (
	"testing"

	"github.com/quotad/quotad/tokens"
)

func TestEncodingForModel(t *testing.T) {
	for _, tc := range []struct {
		model, want string
	}{
		{"gpt-5", tokens.O200kBase},
		{"gpt-5-mini-2025-08-07", tokens.O200kBase},
		{"gpt-4.1-nano", tokens.O200kBase},
		{"gpt-4.5-preview", tokens.O200kBase},
		{"gpt-4o", tokens.O200kBase},
		{"gpt-4o-mini-2024-07-18", tokens.O200kBase},
		{"chatgpt-4o-latest", tokens.O200kBase},
		{"o1", tokens.O200kBase},
		{"o1-mini", tokens.O200kBase},
		{"o3-pro", tokens.O200kBase},
		{"o4-mini-2025-04-16", tokens.O200kBase},
		{"gpt-oss-120b", tokens.O200kHarmony},
		{"gpt-4", tokens.CL100kBase},
		{"gpt-4-32k-0613", tokens.CL100kBase},
		{"gpt-4-turbo", tokens.CL100kBase},
		{"gpt-3.5-turbo-0125", tokens.CL100kBase},
		{"gpt-35-turbo", tokens.CL100kBase},
		{"gpt-35-turbo-16k", tokens.CL100kBase},
		{"text-embedding-ada-002", tokens.CL100kBase},
		{"text-embedding-3-large", tokens.CL100kBase},
		{"ft:gpt-4o-mini-2024-07-18:acme::abc123", tokens.O200kBase},
		{"ft:gpt-3.5-turbo-0613:acme::xyz", tokens.CL100kBase},
		{"openai/gpt-4o", tokens.O200kBase},
		{"azure/gpt-35-turbo", tokens.CL100kBase},
		{" GPT-4O ", tokens.O200kBase},
		{"claude-sonnet-4-5", ""},
		{"gemini-2.5-pro", ""},
		{"my-custom-deployment", ""},
		{"", ""},
	} {
		if got := MustLookup(OpenAI).Encoding(tc.model); got != tc.want {
			t.Errorf("openai Encoding(%q) = %q, want %q", tc.model, got, tc.want)
		}
	}
	if got := MustLookup(Anthropic).Encoding("gpt-4o"); got != "" {
		t.Errorf("the anthropic style counts gpt-4o with %q; Claude's tokenizer is not tiktoken", got)
	}
}

func TestEveryMappedEncodingCanBeCounted(t *testing.T) {
	c, err := tokens.NewCounter()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range openAIModels {
		if _, err := c.CountText(e.encoding, "hello"); err != nil {
			t.Errorf("%s -> %s: %v", e.prefix, e.encoding, err)
		}
	}
}
