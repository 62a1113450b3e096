#!/usr/bin/env python3
"""Generate vectors.json: reference token counts from Python tiktoken.

Not run by the Go tests. To regenerate (offline):

    python3 -m venv /tmp/tkvenv && /tmp/tkvenv/bin/pip install tiktoken
    # Place the vocabularies embedded in github.com/pkoukk/tiktoken-go-loader
    # (assets/*.tiktoken in the Go module cache) into a cache directory under the
    # names Python tiktoken expects: sha1 hex of the blob URL.
    A=$(go env GOMODCACHE)/github.com/pkoukk/tiktoken-go-loader@v0.0.2/assets
    mkdir -p /tmp/tkcache
    for e in cl100k_base o200k_base; do
      h=$(printf '%s' "https://openaipublic.blob.core.windows.net/encodings/$e.tiktoken" | sha1sum | cut -d' ' -f1)
      cp "$A/$e.tiktoken" "/tmp/tkcache/$h"
    done
    TIKTOKEN_CACHE_DIR=/tmp/tkcache /tmp/tkvenv/bin/python tokens/testdata/gen_vectors.py \
        > tokens/testdata/vectors.json

Python tiktoken verifies the sha256 of each cached file, so the counts are for
exactly the vocabularies quotad embeds.
"""
import json
import random
import sys

import tiktoken

ENCODINGS = ["cl100k_base", "o200k_base", "o200k_harmony"]


def ten_kb_text():
    """A deterministic ~10 KB mixed English/code/number text."""
    words = ("the quick brown fox jumps over lazy dog rate limit token bucket "
             "quota provider request tenant fairness window refill burst").split()
    rng = random.Random(42)
    out = []
    size = 0
    i = 0
    while size < 10 * 1024:
        if i % 17 == 16:
            chunk = "\n\nfunc f%d(x int) int { return x*%d + %d }\n" % (i, i, i * 7)
        elif i % 11 == 10:
            chunk = " %d.%02d%% of %d" % (rng.randrange(1000), rng.randrange(100), rng.randrange(10**6))
        else:
            w = rng.choice(words)
            chunk = (" " + w.capitalize()) if i % 9 == 0 else (" " + w)
            if i % 13 == 12:
                chunk += "."
        out.append(chunk)
        size += len(chunk.encode("utf-8"))
        i += 1
    return "".join(out)


def random_tricky(seed, n):
    """Random strings over an alphabet chosen to stress pre-tokenisation."""
    alphabet = list("aZ09 '\t\n\r.,/-_") + [
        "ſ", "\u00a0", "\u0085", "\u2028", "\u3000", "\u200b", "\u000b", "\u000c",
        "\u001c", "é", "e\u0301", "日", "本", "한", "ع", "ह", "\u094d", "😀", "👍🏽",
        "\u200d", "Ⅻ", "½", "²", "ǅ", "ß", "İ", "K", "'S", "'LL", "'ve",
    ]
    rng = random.Random(seed)
    return "".join(rng.choice(alphabet) for _ in range(n))


TEXTS = [
    ("empty", ""),
    ("ascii", "Hello, world! This is a simple sentence."),
    ("ascii_contractions", "I'm sure they'll say it's what we've done, isn't it? WE'RE, YOU'D, HE'S"),
    ("long_s_contraction", "it'ſ fine, IT'ſ FINE, it'ſt"),
    ("code_go", 'package main\n\nimport "fmt"\n\nfunc main() {\n\tfor i := 0; i < 10; i++ {\n\t\tfmt.Printf("%d\\n", i*i)\n\t}\n}\n'),
    ("code_python", "def f(x):\n    return {k: v**2 for k, v in x.items() if v > 0}  # comment\n"),
    ("json", '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":256}'),
    ("whitespace_long", "a" + " " * 500 + "b" + "\t" * 300 + "\n" * 200 + "c"),
    ("whitespace_trailing", "end with spaces   "),
    ("whitespace_trailing_newline", "a \n "),
    ("whitespace_newline_runs", "x\n\n\n  \n\t\ny  \r\n\r\n z"),
    ("whitespace_only", "   \n\n  \t "),
    ("unicode_spaces", "a\u00a0b\u2003c\u3000d\u2028e\u0085f\u200bg\u000bh\u000ci\u001cj"),
    ("cjk", "日本語のテキストを数えます。中文文本也一样。한국어 텍스트도 있습니다."),
    ("emoji", "👍🏽 family: 👨‍👩‍👧‍👦 flags: 🇫🇷🇯🇵 faces 😀😃😄😁"),
    ("accents_combining", "café naïve résumé e\u0301 a\u0308 Ω≈ç√∫"),
    ("arabic_hindi", "مرحبا بالعالم — नमस्ते दुनिया — Привет, мир"),
    ("numbers", "0 1 12 123 1234 12345 123456 3.14159 -42 1e10 1,000,000 ½ ² Ⅻ ٣٤٥"),
    ("urls_paths", "https://example.com/a/b?c=d&e=f#g /usr/local/bin/quotad C:\\Windows\\x"),
    ("special_token_text", "before <|endoftext|> middle <|fim_prefix|><|endofprompt|> after"),
    ("punctuation_runs", "!!!??? ... --- *** /// \\\\ ((())) [[]] {{}} <<>> ;;; :::"),
    ("mixed_case", "camelCaseIdentifier PascalCase snake_case SCREAMING_CASE HTTPServer"),
    ("text_10kb", ten_kb_text()),
]
TEXTS += [("random_%d" % s, random_tricky(s, 200)) for s in range(8)]

CHATS = [
    ("single_user", [{"role": "user", "content": "Hello!"}]),
    ("system_user", [
        {"role": "system", "content": "You are a helpful, pattern-following assistant."},
        {"role": "user", "content": "Translate 'rate limit' into French."},
    ]),
    ("with_names", [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
        {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
        {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the client deliverable."},
    ]),
    ("multilingual", [
        {"role": "user", "content": "日本語で答えてください 👍"},
        {"role": "assistant", "content": "はい、わかりました。"},
        {"role": "user", "name": "Zoë", "content": "Merci beaucoup !"},
    ]),
    ("empty_content", [{"role": "assistant", "content": ""}]),
]


def count_chat(enc, messages):
    # OpenAI cookbook accounting for current chat models: 3 tokens per message,
    # +1 per name, +3 to prime the reply. Values are encoded as ordinary text.
    n = 0
    for m in messages:
        n += 3
        for key, value in m.items():
            n += len(enc.encode_ordinary(value))
            if key == "name":
                n += 1
    return n + 3


def main():
    encs = {name: tiktoken.get_encoding(name) for name in ENCODINGS}
    out = {
        "source": "Python tiktoken %s, encode_ordinary (chats: OpenAI cookbook accounting, 3 tokens "
                  "per message, +1 per name, +3 reply priming); generated by testdata/gen_vectors.py "
                  "from the vocabularies embedded in github.com/pkoukk/tiktoken-go-loader v0.0.2"
                  % tiktoken.__version__,
        "texts": [
            {"name": name, "text": text,
             "counts": {e: len(enc.encode_ordinary(text)) for e, enc in encs.items()}}
            for name, text in TEXTS
        ],
        "chats": [
            {"name": name, "messages": msgs,
             "counts": {e: count_chat(enc, msgs) for e, enc in encs.items()}}
            for name, msgs in CHATS
        ],
    }
    json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
