package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"gopkg.in/yaml.v3"

	"github.com/quotad/quotad/config"
)

const poolsUsage = `Usage: quotad pools COMMAND [flags]

Commands:
  list                      list the pools in etcd
  get NAME                  print one pool
  set [NAME] -f pool.yaml   create or change a pool (validated before it is written)
  delete NAME               delete a pool
  validate -f file.yaml     check a pool or a whole config file, offline

set writes only if the pool in etcd is still at the revision the file was based
on: the "# mod_revision: N" line that "get -o yaml" prints, or --revision N; with
neither, set only creates. --force writes regardless.

Flags (the --etcd-* ones also come from QUOTAD_ETCD_* variables):
`

// poolsTimeout bounds each command's etcd requests.
const poolsTimeout = 10 * time.Second

// revisionLine is the line of `get -o yaml` output that `set` reads back.
var revisionLine = regexp.MustCompile(`(?m)^#\s*mod_revision:\s*(\d+)\s*$`)

// poolsCmd is one `quotad pools` invocation: its flags and where it writes.
type poolsCmd struct {
	etcd     EtcdSettings
	output   string
	file     string
	force    bool
	revision int64
	stdout   io.Writer
	stderr   io.Writer
}

// poolsCommand runs `quotad pools args...` and returns the exit code: 0 done, 1
// failed, 2 misused.
func poolsCommand(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) string) int {
	c := &poolsCmd{stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("quotad pools", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.etcd.defineFlags(fs)
	fs.StringVar(&c.output, "o", "table", "output format: table, yaml or json")
	fs.StringVar(&c.file, "f", "", "pool file for set and validate (- for stdin)")
	fs.BoolVar(&c.force, "force", false, "set or delete whatever the pool's current revision")
	fs.Int64Var(&c.revision, "revision", -1, "the mod revision set or delete expects the pool at (0: must not exist)")
	fs.Usage = func() {
		fmt.Fprint(stderr, poolsUsage)
		fs.PrintDefaults()
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fs.Usage()
		return 2
	}
	sub, operands, err := parseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	if errs := c.etcdFromEnv(fs, env); len(errs) > 0 {
		fmt.Fprintf(stderr, "quotad pools: %v\n", errors.Join(errs...))
		return 2
	}
	if c.output != "table" && c.output != "yaml" && c.output != "json" {
		fmt.Fprintf(stderr, "quotad pools: -o %q: want table, yaml or json\n", c.output)
		return 2
	}
	want := map[string]int{"list": 0, "get": 1, "delete": 1, "validate": 0, "set": -1}
	n, known := want[sub]
	switch {
	case !known:
		fmt.Fprintf(stderr, "quotad pools: unknown command %q\n\n", sub)
		fs.Usage()
		return 2
	case n >= 0 && len(operands) != n, n < 0 && len(operands) > 1:
		fmt.Fprintf(stderr, "quotad pools %s: unexpected arguments %q\n", sub, operands)
		return 2
	case (sub == "set" || sub == "validate") && c.file == "":
		fmt.Fprintf(stderr, "quotad pools %s: -f FILE is required\n", sub)
		return 2
	}
	if sub == "validate" {
		err = c.validate()
	} else {
		err = c.online(ctx, sub, operands)
	}
	if err != nil {
		fmt.Fprintf(stderr, "quotad pools %s: %v\n", sub, err)
		return 1
	}
	return 0
}

// parseInterleaved parses args where flags may follow operands ("get NAME -o
// yaml"). It returns the first operand (the command) and the others.
func parseInterleaved(fs *flag.FlagSet, args []string) (string, []string, error) {
	var operands []string
	for {
		if err := fs.Parse(args); err != nil {
			return "", nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		operands = append(operands, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(operands) == 0 {
		return "", nil, errors.New("no command")
	}
	return operands[0], operands[1:], nil
}

// etcdFromEnv fills the --etcd-* flags not given from QUOTAD_ETCD_* variables.
func (c *poolsCmd) etcdFromEnv(fs *flag.FlagSet, env func(string) string) []error {
	etcdFlags := flag.NewFlagSet("etcd", flag.ContinueOnError)
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	fs.VisitAll(func(f *flag.Flag) {
		if strings.HasPrefix(f.Name, "etcd-") {
			etcdFlags.Var(f.Value, f.Name, f.Usage)
		}
	})
	return settingsFromEnv(etcdFlags, given, env)
}

// online runs a command that talks to etcd.
func (c *poolsCmd) online(ctx context.Context, sub string, operands []string) error {
	cli, err := c.etcd.client()
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, poolsTimeout)
	defer cancel()
	name := ""
	if len(operands) > 0 {
		name = operands[0]
	}
	switch sub {
	case "list":
		return c.list(ctx, cli)
	case "get":
		return c.get(ctx, cli, name)
	case "set":
		return c.set(ctx, cli, name)
	default:
		return c.delete(ctx, cli, name)
	}
}

func (c *poolsCmd) key(name string) string { return c.etcd.prefix() + name }

// storedPool is a pool as read from etcd: valid, or with the reason it is not.
type storedPool struct {
	name   string
	rev    int64
	pool   config.Pool
	err    error
	raw    []byte
	exists bool
}

func (c *poolsCmd) read(ctx context.Context, cli *clientv3.Client, name string) (storedPool, error) {
	resp, err := cli.Get(ctx, c.key(name))
	if err != nil {
		return storedPool{}, fmt.Errorf("read %s: %w", c.key(name), err)
	}
	if len(resp.Kvs) == 0 {
		return storedPool{name: name}, nil
	}
	return c.decode(resp.Kvs[0].Key, resp.Kvs[0].Value, resp.Kvs[0].ModRevision), nil
}

func (c *poolsCmd) decode(key, value []byte, rev int64) storedPool {
	name := strings.TrimPrefix(string(key), c.etcd.prefix())
	p, err := config.ParsePool(value, name)
	return storedPool{name: name, rev: rev, pool: p, err: err, raw: value, exists: true}
}

func (c *poolsCmd) list(ctx context.Context, cli *clientv3.Client) error {
	resp, err := cli.Get(ctx, c.etcd.prefix(), clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("list %s: %w", c.etcd.prefix(), err)
	}
	pools := make([]storedPool, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		pools = append(pools, c.decode(kv.Key, kv.Value, kv.ModRevision))
	}
	if c.output == "table" {
		return c.table(pools)
	}
	var f config.File
	f.Pools = []config.Pool{}
	for _, sp := range pools {
		if sp.err != nil {
			fmt.Fprintf(c.stderr, "quotad pools list: skipping %s (mod revision %d): %v\n", c.key(sp.name), sp.rev, sp.err)
			continue
		}
		f.Pools = append(f.Pools, sp.pool)
	}
	return c.encode(f, "")
}

func (c *poolsCmd) get(ctx context.Context, cli *clientv3.Client, name string) error {
	sp, err := c.read(ctx, cli, name)
	switch {
	case err != nil:
		return err
	case !sp.exists:
		return fmt.Errorf("pool %q not found (no key %s)", name, c.key(name))
	case sp.err != nil:
		return fmt.Errorf("%s (mod revision %d) holds an invalid pool: %w\nits value:\n%s", c.key(name), sp.rev, sp.err, sp.raw)
	case c.output == "table":
		return c.table([]storedPool{sp})
	}
	header := fmt.Sprintf("# key: %s\n# mod_revision: %d\n", c.key(name), sp.rev)
	return c.encode(sp.pool, header)
}

// encode writes v as YAML (after header) or JSON.
func (c *poolsCmd) encode(v any, header string) error {
	var (
		out []byte
		err error
	)
	if c.output == "json" {
		out, err = json.MarshalIndent(v, "", "  ")
		out = append(out, '\n')
	} else {
		out, err = marshalYAML(v)
		out = append([]byte(header), out...)
	}
	if err != nil {
		return fmt.Errorf("encode as %s: %w", c.output, err)
	}
	_, err = c.stdout.Write(out)
	return err
}

// marshalYAML encodes v as YAML indented by two spaces, as the examples are.
func marshalYAML(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	err := enc.Close()
	return b.Bytes(), err
}

func (c *poolsCmd) table(pools []storedPool) error {
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tREVISION\tLIMITS\tCONCURRENT")
	for _, sp := range pools {
		if sp.err != nil {
			fmt.Fprintf(w, "%s\t%d\tINVALID: %s\t-\n", sp.name, sp.rev, strings.ReplaceAll(sp.err.Error(), "\n", "; "))
			continue
		}
		concurrent := "-"
		if sp.pool.Concurrent > 0 {
			concurrent = strconv.FormatInt(sp.pool.Concurrent, 10)
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\n", sp.name, sp.rev, limitsSummary(sp.pool), concurrent)
	}
	return w.Flush()
}

// limitsSummary is "requests 500/minute, tokens 30000/minute".
func limitsSummary(p config.Pool) string {
	if len(p.Limits) == 0 {
		return "-"
	}
	parts := make([]string, len(p.Limits))
	for i, l := range p.Limits {
		parts[i] = fmt.Sprintf("%s %d/%s", l.Resource, l.Amount, l.Per)
		if l.Burst != nil && *l.Burst != l.Amount {
			parts[i] += fmt.Sprintf(" (burst %d)", *l.Burst)
		}
	}
	return strings.Join(parts, ", ")
}

func (c *poolsCmd) readFile() ([]byte, error) {
	if c.file == "-" {
		return io.ReadAll(io.LimitReader(os.Stdin, config.MaxFileSize+1))
	}
	return os.ReadFile(c.file)
}

func (c *poolsCmd) set(ctx context.Context, cli *clientv3.Client, name string) error {
	data, err := c.readFile()
	if err != nil {
		return err
	}
	p, err := config.ParsePool(data, name)
	if err != nil {
		return fmt.Errorf("%s: %w", c.file, err)
	}
	value, err := marshalYAML(p)
	if err != nil {
		return fmt.Errorf("encode pool %q: %w", p.Name, err)
	}
	key := c.key(p.Name)
	if c.force {
		resp, err := cli.Put(ctx, key, string(value))
		if err != nil {
			return fmt.Errorf("put %s: %w", key, err)
		}
		fmt.Fprintf(c.stdout, "pool %q set (revision %d)\n", p.Name, resp.Header.Revision)
		return nil
	}
	expected := c.revision
	if m := revisionLine.FindSubmatch(data); expected < 0 && m != nil {
		expected, _ = strconv.ParseInt(string(m[1]), 10, 64)
	}
	expected = max(expected, 0)
	resp, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", expected)).
		Then(clientv3.OpPut(key, string(value))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if !resp.Succeeded {
		return conflict(p.Name, expected, resp.Responses[0].GetResponseRange().GetKvs())
	}
	fmt.Fprintf(c.stdout, "pool %q set (revision %d)\n", p.Name, resp.Header.Revision)
	return nil
}

// conflict explains why a write expecting the pool at revision expected failed.
func conflict(name string, expected int64, current []*mvccpb.KeyValue) error {
	switch {
	case expected == 0 && len(current) > 0:
		return fmt.Errorf("pool %q already exists (mod revision %d) and nothing says which version you changed: "+
			"start from `quotad pools get %s -o yaml` (it records the revision), or pass --revision %d, or --force to overwrite",
			name, current[0].ModRevision, name, current[0].ModRevision)
	case len(current) == 0:
		return fmt.Errorf("pool %q was deleted since mod revision %d: set it with --revision 0 to create it again, or --force", name, expected)
	}
	return fmt.Errorf("pool %q was changed by someone else since mod revision %d (it is now at %d): "+
		"get it again, reapply your change and set again, or --force to overwrite their change", name, expected, current[0].ModRevision)
}

func (c *poolsCmd) delete(ctx context.Context, cli *clientv3.Client, name string) error {
	key := c.key(name)
	var (
		deleted int64
		rev     int64
	)
	if c.revision >= 0 && !c.force {
		resp, err := cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", c.revision)).
			Then(clientv3.OpDelete(key)).
			Else(clientv3.OpGet(key)).
			Commit()
		if err != nil {
			return fmt.Errorf("delete %s: %w", key, err)
		}
		if !resp.Succeeded {
			return conflict(name, c.revision, resp.Responses[0].GetResponseRange().GetKvs())
		}
		deleted, rev = resp.Responses[0].GetResponseDeleteRange().GetDeleted(), resp.Header.Revision
	} else {
		resp, err := cli.Delete(ctx, key)
		if err != nil {
			return fmt.Errorf("delete %s: %w", key, err)
		}
		deleted, rev = resp.Deleted, resp.Header.Revision
	}
	if deleted == 0 {
		return fmt.Errorf("pool %q not found (no key %s)", name, key)
	}
	fmt.Fprintf(c.stdout, "pool %q deleted (revision %d)\n", name, rev)
	return nil
}

// validate checks a pool file or a config file, offline.
func (c *poolsCmd) validate() error {
	data, err := c.readFile()
	if err != nil {
		return err
	}
	var top map[string]any
	if yaml.Unmarshal(data, &top) == nil && top["pools"] != nil {
		f, err := config.ParseFile(data)
		if err != nil {
			return fmt.Errorf("%s: %w", c.file, err)
		}
		fmt.Fprintf(c.stdout, "%s: %d pools valid\n", c.file, len(f.Pools))
		return nil
	}
	p, err := config.ParsePool(data, "")
	if err != nil {
		return fmt.Errorf("%s: %w", c.file, err)
	}
	fmt.Fprintf(c.stdout, "%s: pool %q valid\n", c.file, p.Name)
	return nil
}
