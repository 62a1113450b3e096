package driver

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
)

// systemPrompt opens every call.
const systemPrompt = "You are a helpful assistant. Answer from the context."

// filler is repeated to make prompts of a given length (ASCII: one character
// per byte).
const filler = "the quick brown fox jumps over the lazy dog while the retrieval context goes on. "

// Call is one provider call of the workload.
type Call struct {
	Long      bool // a long retrieval prompt, else a short chat
	Chars     int  // characters of the user message
	MaxTokens int64
}

// calls returns the calls of one task: the same for every mode, drawn from a
// generator seeded by the scenario's seed, the service and the task.
func (w Workload) calls(seed uint64, service, task, n int) []Call {
	rng := rand.New(rand.NewPCG(seed, uint64(service)<<32|uint64(task)))
	out := make([]Call, n)
	for i := range out {
		c := Call{Long: rng.Float64() < w.LongFraction}
		r := w.ShortChars
		if c.Long {
			r = w.LongChars
		}
		c.Chars = between(rng, r)
		c.MaxTokens = int64(between(rng, w.MaxTokens))
		out[i] = c
	}
	return out
}

func between(rng *rand.Rand, r [2]int) int { return r[0] + rng.IntN(r[1]-r[0]+1) }

// InputTokens is the prompt estimate the simulator charges: ceil(characters/4)
// over the text of every message.
func (c Call) InputTokens() int64 {
	chars := int64(len(systemPrompt) + c.Chars)
	return (chars + 3) / 4
}

// chatRequest is the body of a Chat Completions request.
type chatRequest struct {
	Model     string        `json:"model"`
	Messages  []chatMessage `json:"messages"`
	MaxTokens int64         `json:"max_tokens"`
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// body returns the JSON request of c for model.
func (c Call) body(model string) ([]byte, error) {
	user := strings.Repeat(filler, c.Chars/len(filler)+1)[:c.Chars]
	b, err := json.Marshal(chatRequest{
		Model: model,
		Messages: []chatMessage{
			{Role: "system", Content: systemPrompt},
			{Role: "user", Content: user},
		},
		MaxTokens: c.MaxTokens,
	})
	if err != nil {
		return nil, fmt.Errorf("encoding the request: %w", err)
	}
	return b, nil
}
