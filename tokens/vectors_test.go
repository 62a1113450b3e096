package tokens

import (
	"encoding/json"
	"os"
	"testing"
)

// vectors mirrors testdata/vectors.json, produced by testdata/gen_vectors.py
// with Python tiktoken from the same embedded vocabularies.
type vectors struct {
	Source string `json:"source"`
	Texts  []struct {
		Name   string           `json:"name"`
		Text   string           `json:"text"`
		Counts map[string]int64 `json:"counts"`
	} `json:"texts"`
	Chats []struct {
		Name     string `json:"name"`
		Messages []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
			Name    string `json:"name"`
		} `json:"messages"`
		Counts map[string]int64 `json:"counts"`
	} `json:"chats"`
}

func loadVectors(t testing.TB) vectors {
	t.Helper()
	data, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("decode vectors: %v", err)
	}
	if len(v.Texts) == 0 || len(v.Chats) == 0 {
		t.Fatal("vectors.json has no texts or chats")
	}
	return v
}

func TestCountTextMatchesPythonTiktoken(t *testing.T) {
	c := newTestCounter(t)
	for _, tc := range loadVectors(t).Texts {
		for encoding, want := range tc.Counts {
			got, err := c.CountText(encoding, tc.Text)
			if err != nil {
				t.Fatalf("%s/%s: %v", tc.Name, encoding, err)
			}
			if got.Tokens != want || got.Encoding != encoding || got.Estimated {
				t.Errorf("%s/%s: got %+v, want %d tokens", tc.Name, encoding, got, want)
			}
		}
	}
}

func TestCountMessagesMatchesCookbook(t *testing.T) {
	c := newTestCounter(t)
	for _, tc := range loadVectors(t).Chats {
		msgs := make([]Message, len(tc.Messages))
		for i, m := range tc.Messages {
			msgs[i] = Message{Role: m.Role, Content: m.Content, Name: m.Name}
		}
		for encoding, want := range tc.Counts {
			got, err := c.CountMessages(encoding, msgs)
			if err != nil {
				t.Fatalf("%s/%s: %v", tc.Name, encoding, err)
			}
			if got.Tokens != want || got.Encoding != encoding || got.Estimated {
				t.Errorf("%s/%s: got %+v, want %d tokens", tc.Name, encoding, got, want)
			}
		}
	}
}

func newTestCounter(t testing.TB) *Counter {
	t.Helper()
	c, err := NewCounter()
	if err != nil {
		t.Fatal(err)
	}
	return c
}
