package tokens

import "strings"

// modelPrefixes maps model-name prefixes to encodings, following Python
// tiktoken's model.py. EncodingForModel picks the longest matching prefix, so
// "gpt-4o-mini" is o200k_base although "gpt-4" is cl100k_base. Read-only;
// keep in step with new OpenAI model families.
var modelPrefixes = []struct{ prefix, encoding string }{
	{"gpt-5", O200kBase},
	{"gpt-4.5", O200kBase},
	{"gpt-4.1", O200kBase},
	{"gpt-4o", O200kBase},
	{"chatgpt-4o", O200kBase},
	{"o1", O200kBase},
	{"o3", O200kBase},
	{"o4-mini", O200kBase},
	{"gpt-oss-", O200kHarmony},

	{"gpt-4", CL100kBase},
	{"gpt-3.5-turbo", CL100kBase},
	{"gpt-35-turbo", CL100kBase}, // Azure deployment-style name
	{"text-embedding-ada-002", CL100kBase},
	{"text-embedding-3-", CL100kBase},
	{"davinci-002", CL100kBase},
	{"babbage-002", CL100kBase},
}

// namePrefixes are stripped before matching: fine-tuned models
// ("ft:gpt-4o-mini-2024-07-18:org::id") and gateway-style provider prefixes.
var namePrefixes = []string{"openai/", "azure/", "ft:"}

// EncodingForModel returns the tiktoken encoding of an OpenAI model name
// (case-insensitive, longest-prefix match). ok is false for models it does not
// know, including every non-OpenAI model and Azure deployments given custom
// names; those are estimated by Counter.
func EncodingForModel(model string) (encoding string, ok bool) {
	m := strings.ToLower(strings.TrimSpace(model))
	for _, p := range namePrefixes {
		m = strings.TrimPrefix(m, p)
	}
	best := -1
	for _, e := range modelPrefixes {
		if strings.HasPrefix(m, e.prefix) && len(e.prefix) > best {
			encoding, best = e.encoding, len(e.prefix)
		}
	}
	return encoding, best >= 0
}
