package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quotad/quotad/config"
	"github.com/quotad/quotad/internal/etcdtest"
)

type poolsRun struct {
	code           int
	stdout, stderr string
}

// runPools runs `quotad pools args...` with env as the environment.
func runPools(t *testing.T, env map[string]string, args ...string) poolsRun {
	t.Helper()
	var out, errOut bytes.Buffer
	code := poolsCommand(context.Background(), args, &out, &errOut, func(k string) string { return env[k] })
	return poolsRun{code, out.String(), errOut.String()}
}

func (r poolsRun) ok(t *testing.T) string {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

func (r poolsRun) fails(t *testing.T, code int, want ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
		}
	}
}

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const cliPool = `name: openai/prod
provider: openai
limits:
  - {resource: requests, amount: 100, per: minute}
  - {resource: tokens, amount: 30000, per: minute, burst: 60000}
concurrent: 8
`

func etcdEnv(e *etcdtest.Server) map[string]string {
	return map[string]string{"QUOTAD_ETCD_ENDPOINTS": strings.Join(e.Endpoints(), ",")}
}

func TestPoolsSetGetListDelete(t *testing.T) {
	t.Parallel()
	env := etcdEnv(etcdtest.Start(t))
	runPools(t, env, "set", "-f", writeTemp(t, "p.yaml", cliPool)).ok(t)

	table := runPools(t, env, "list").ok(t)
	for _, want := range []string{"NAME", "openai/prod", "requests 100/minute, tokens 30000/minute (burst 60000)", "8"} {
		if !strings.Contains(table, want) {
			t.Errorf("list lacks %q:\n%s", want, table)
		}
	}
	got := runPools(t, env, "get", "openai/prod").ok(t)
	if !strings.Contains(got, "openai/prod") || !strings.Contains(got, "requests 100/minute") {
		t.Errorf("get:\n%s", got)
	}

	// Two operators start from the same copy; the second one's write is refused.
	copyA := runPools(t, env, "get", "openai/prod", "-o", "yaml").ok(t)
	if !strings.Contains(copyA, "# mod_revision: ") {
		t.Fatalf("get -o yaml does not record the revision:\n%s", copyA)
	}
	editA := writeTemp(t, "a.yaml", strings.Replace(copyA, "amount: 100", "amount: 200", 1))
	editB := writeTemp(t, "b.yaml", strings.Replace(copyA, "amount: 100", "amount: 300", 1))
	runPools(t, env, "set", "-f", editA).ok(t)
	runPools(t, env, "set", "-f", editB).fails(t, 1, `pool "openai/prod" was changed by someone else since mod revision`, "--force")
	if got := runPools(t, env, "get", "openai/prod").ok(t); !strings.Contains(got, "requests 200/minute") {
		t.Errorf("the stale write went through:\n%s", got)
	}
	// Without a revision, set only creates.
	runPools(t, env, "set", "-f", writeTemp(t, "p.yaml", cliPool)).fails(t, 1, "already exists", "--revision")
	runPools(t, env, "set", "-f", editB, "--force").ok(t)
	if got := runPools(t, env, "get", "openai/prod").ok(t); !strings.Contains(got, "requests 300/minute") {
		t.Errorf("--force did not write:\n%s", got)
	}

	runPools(t, env, "delete", "openai/prod").ok(t)
	runPools(t, env, "get", "openai/prod").fails(t, 1, `pool "openai/prod" not found`)
	runPools(t, env, "delete", "openai/prod").fails(t, 1, "not found")
	runPools(t, env, "set", "-f", editA).fails(t, 1, "was deleted since mod revision")
}

func TestPoolsSetValidatesBeforeWriting(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	env := etcdEnv(e)
	bad := writeTemp(t, "bad.yaml", "name: p\nlimits: [{resource: requests, amount: -5, per: minute}]\n")
	runPools(t, env, "set", "-f", bad).fails(t, 1, `pool "p": limits[0].amount: -5`)
	runPools(t, env, "set", "-f", bad, "--force").fails(t, 1, "amount")
	runPools(t, env, "get", "p").fails(t, 1, "not found")

	// A bad value written behind the CLI's back is shown as such.
	etcdtest.Put(t, e.Client(t), config.DefaultEtcdPrefix+"q", "limits: [")
	if table := runPools(t, env, "list").ok(t); !strings.Contains(table, "INVALID") {
		t.Errorf("list does not flag the invalid value:\n%s", table)
	}
	runPools(t, env, "get", "q").fails(t, 1, "invalid pool")
}

func TestPoolsOutputRoundTrip(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	// Flags instead of the environment, and a custom prefix.
	flags := []string{"--etcd-endpoints", strings.Join(e.Endpoints(), ","), "--etcd-prefix", "/custom/"}
	run := func(args ...string) poolsRun { return runPools(t, nil, append(args, flags...)...) }
	run("set", "-f", writeTemp(t, "p.yaml", cliPool)).ok(t)
	run("set", "other", "-f", writeTemp(t, "o.json", `{"concurrent": 3, "tenants": {"web": {"weight": 2}}}`)).ok(t)

	for _, format := range []string{"yaml", "json"} {
		before := run("get", "openai/prod", "-o", format).ok(t)
		file := writeTemp(t, "p."+format, before)
		run("delete", "openai/prod").ok(t)
		run("set", "-f", file, "--revision", "0").ok(t)
		after := run("get", "openai/prod", "-o", format).ok(t)
		strip := func(s string) string { return revisionLine.ReplaceAllString(s, "") }
		if strip(before) != strip(after) {
			t.Errorf("%s round trip changed the pool:\n%s\n---\n%s", format, before, after)
		}
	}

	var listed config.File
	if err := json.Unmarshal([]byte(run("list", "-o", "json").ok(t)), &listed); err != nil || len(listed.Pools) != 2 {
		t.Fatalf("list -o json: %v %+v", err, listed)
	}
	all := writeTemp(t, "all.yaml", run("list", "-o", "yaml").ok(t))
	if got := runPools(t, nil, "validate", "-f", all).ok(t); !strings.Contains(got, "2 pools valid") {
		t.Errorf("validate of list -o yaml: %s", got)
	}
}

func TestPoolsValidateOffline(t *testing.T) {
	t.Parallel()
	if got := runPools(t, nil, "validate", "-f", writeTemp(t, "p.yaml", cliPool)).ok(t); !strings.Contains(got, `pool "openai/prod" valid`) {
		t.Errorf("validate: %s", got)
	}
	runPools(t, nil, "validate", "-f", writeTemp(t, "f.yaml", "pools:\n  - name: a\n    concurrent: 1\n  - name: a\n    concurrent: 2\n")).
		fails(t, 1, `"a" is already used`)
	runPools(t, nil, "validate", "-f", writeTemp(t, "p.yaml", "name: p\nlimits: [{resource: requests, amount: 10, per: fortnight}]\n")).
		fails(t, 1, `limits[0].per`, "fortnight")
}

func TestPoolsUsageErrors(t *testing.T) {
	t.Parallel()
	runPools(t, nil).fails(t, 2, "Usage: quotad pools")
	runPools(t, nil, "frobnicate").fails(t, 2, `unknown command "frobnicate"`)
	runPools(t, nil, "get").fails(t, 2, "unexpected arguments")
	runPools(t, nil, "set").fails(t, 2, "-f FILE is required")
	runPools(t, nil, "list", "-o", "xml").fails(t, 2, `-o "xml"`)
	runPools(t, nil, "list").fails(t, 1, "no etcd endpoints")
	runPools(t, map[string]string{"QUOTAD_ETCD_ENDPOINTS": "http://127.0.0.1:1", "QUOTAD_ETCD_CERT": "/x.pem"}, "list").
		fails(t, 1, "etcd-cert and etcd-key go together")
}

func TestPoolsEtcdTLSSettings(t *testing.T) {
	t.Parallel()
	garbage := writeTemp(t, "ca.pem", "not a certificate")
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"QUOTAD_ETCD_CA": garbage}, "etcd-ca " + garbage + ": no PEM certificate"},
		{map[string]string{"QUOTAD_ETCD_CA": "/nonexistent/ca.pem"}, "etcd-ca: open /nonexistent/ca.pem"},
		{map[string]string{"QUOTAD_ETCD_CERT": garbage, "QUOTAD_ETCD_KEY": garbage}, "etcd-cert " + garbage},
	} {
		tc.env["QUOTAD_ETCD_ENDPOINTS"] = "https://127.0.0.1:1"
		runPools(t, tc.env, "list").fails(t, 1, tc.want)
	}
}
