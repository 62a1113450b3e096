package tokens

import "testing"

func TestEncodingForModel(t *testing.T) {
	for _, tc := range []struct {
		model, want string
		ok          bool
	}{
		{"gpt-5", O200kBase, true},
		{"gpt-5-mini-2025-08-07", O200kBase, true},
		{"gpt-4.1-nano", O200kBase, true},
		{"gpt-4.5-preview", O200kBase, true},
		{"gpt-4o", O200kBase, true},
		{"gpt-4o-mini-2024-07-18", O200kBase, true},
		{"chatgpt-4o-latest", O200kBase, true},
		{"o1", O200kBase, true},
		{"o1-mini", O200kBase, true},
		{"o3-pro", O200kBase, true},
		{"o4-mini-2025-04-16", O200kBase, true},
		{"gpt-oss-120b", O200kHarmony, true},
		{"gpt-4", CL100kBase, true},
		{"gpt-4-32k-0613", CL100kBase, true},
		{"gpt-4-turbo", CL100kBase, true},
		{"gpt-3.5-turbo-0125", CL100kBase, true},
		{"gpt-35-turbo", CL100kBase, true},
		{"gpt-35-turbo-16k", CL100kBase, true},
		{"text-embedding-ada-002", CL100kBase, true},
		{"text-embedding-3-large", CL100kBase, true},
		{"ft:gpt-4o-mini-2024-07-18:acme::abc123", O200kBase, true},
		{"ft:gpt-3.5-turbo-0613:acme::xyz", CL100kBase, true},
		{"openai/gpt-4o", O200kBase, true},
		{"azure/gpt-35-turbo", CL100kBase, true},
		{" GPT-4O ", O200kBase, true},
		{"claude-sonnet-4-5", "", false},
		{"gemini-2.5-pro", "", false},
		{"my-custom-deployment", "", false},
		{"", "", false},
	} {
		got, ok := EncodingForModel(tc.model)
		if got != tc.want || ok != tc.ok {
			t.Errorf("EncodingForModel(%q) = %q, %v; want %q, %v", tc.model, got, ok, tc.want, tc.ok)
		}
	}
}

func TestEveryMappedEncodingCanBeBuilt(t *testing.T) {
	for _, e := range modelPrefixes {
		if _, err := sharedEncoder(e.encoding); err != nil {
			t.Errorf("%s -> %s: %v", e.prefix, e.encoding, err)
		}
	}
}
