package tokens

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// Run with: go test -run '^$' -bench . -benchmem ./tokens

func benchText(b *testing.B) string {
	for _, tc := range loadVectors(b).Texts {
		if tc.Name == "text_10kb" {
			return tc.Text
		}
	}
	b.Fatal("text_10kb missing from vectors")
	return ""
}

// typicalChat is a short multi-turn request with a system prompt (about 1 KB).
var typicalChat = []Message{
	{Role: "system", Content: "You are a helpful assistant for an online bookstore. Answer briefly, cite the catalogue entry you used, and never invent prices. If the question is not about books, politely decline."},
	{Role: "user", Content: "Do you have anything similar to 'The Left Hand of Darkness'? I liked the worldbuilding and the slow pace."},
	{Role: "assistant", Content: "You might enjoy 'The Dispossessed' (catalogue #4411), also by Ursula K. Le Guin: same Hainish universe, a patient and thoughtful story about two planets with opposite political systems."},
	{Role: "user", Name: "alice", Content: "Nice. Is it in stock in paperback, and how long would shipping to Lyon take? Also, is there an e-book edition?"},
}

func reportTokens(b *testing.B, tokens int64) {
	b.ReportMetric(float64(tokens)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}

func BenchmarkCountText10KB(b *testing.B) {
	text := benchText(b)
	c := newTestCounter(b)
	for _, enc := range []string{CL100kBase, O200kBase} {
		b.Run(enc, func(b *testing.B) {
			if err := Warm(enc); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(text)))
			var n Count
			for b.Loop() {
				n, _ = c.CountText(enc, text)
			}
			reportTokens(b, n.Tokens)
		})
	}
}

func BenchmarkCountMessagesChat(b *testing.B) {
	c := newTestCounter(b)
	var size int
	for _, m := range typicalChat {
		size += len(m.Role) + len(m.Content) + len(m.Name)
	}
	for _, enc := range []string{CL100kBase, O200kBase} {
		b.Run(enc, func(b *testing.B) {
			if err := Warm(enc); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			var n Count
			for b.Loop() {
				n, _ = c.CountMessages(enc, typicalChat)
			}
			reportTokens(b, n.Tokens)
		})
	}
}

// BenchmarkCountText10KBParallel shows throughput with the shared encoder
// used from all CPUs at once.
func BenchmarkCountText10KBParallel(b *testing.B) {
	text := benchText(b)
	c := newTestCounter(b)
	if err := Warm(O200kBase); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(text)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.CountText(O200kBase, text); err != nil {
				b.Error(err)
			}
		}
	})
}

// BenchmarkCountLongRun counts 100 KB without a break (adversarial input),
// which chunking keeps linear.
func BenchmarkCountLongRun(b *testing.B) {
	text := strings.Repeat("a", 100<<10)
	c := newTestCounter(b)
	if err := Warm(O200kBase); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		if _, err := c.CountText(O200kBase, text); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBuildEncoder measures the one-time start-up cost of an encoder
// (ns/op: load, hash check, parse, compile) and its memory: MB-retained is
// the live heap the built encoder holds, MB-allocated the garbage made while
// building it.
func BenchmarkBuildEncoder(b *testing.B) {
	for _, s := range []spec{cl100k, o200k} {
		b.Run(s.name, func(b *testing.B) {
			var retained, allocated uint64
			var building time.Duration
			for b.Loop() {
				b.StopTimer()
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				b.StartTimer()
				start := time.Now()
				enc, err := build(s)
				building += time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				runtime.GC()
				runtime.ReadMemStats(&after)
				runtime.KeepAlive(enc)
				retained += after.HeapAlloc - before.HeapAlloc
				allocated += after.TotalAlloc - before.TotalAlloc
				b.StartTimer()
			}
			b.ReportMetric(float64(retained)/float64(b.N)/1e6, "MB-retained")
			b.ReportMetric(float64(allocated)/float64(b.N)/1e6, "MB-allocated")
			b.ReportMetric(float64(building.Milliseconds())/float64(b.N), "ms/build")
		})
	}
}
