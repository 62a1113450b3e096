// Command providersim runs the provider simulator: an HTTP server that rate-limits
// OpenAI- and Anthropic-shaped requests the way the providers document it.
//
// Usage:
//
//	providersim [-listen 127.0.0.1:0] [-period 1m] [-rpm 500] [-tpm 200000]
//	            [-itpm 200000] [-otpm 40000] [-ttft 50ms] [-per-token 1ms] [-seed 1]
//	            [-pool KEY[:MODEL]=RPM,TPM,ITPM,OTPM]... [-quota-exhausted KEY]...
//
// The first line on stdout is "listening on ADDR". The -rpm, -tpm, -itpm and
// -otpm limits apply to every API key and model without a -pool of its own.
// SIGINT or SIGTERM stops the server.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/quotad/quotad/bench/providersim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "providersim:", err)
		os.Exit(1)
	}
}

// run serves the simulator configured by args until ctx is done, announcing the
// bound address on out.
func run(ctx context.Context, args []string, out io.Writer) error {
	def := providersim.DefaultLimits()
	lat := providersim.DefaultLatency()
	var cfg providersim.Config
	fs := flag.NewFlagSet("providersim", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	fs.DurationVar(&def.Period, "period", def.Period, "period over which every limit refills")
	fs.Int64Var(&def.Requests.Limit, "rpm", def.Requests.Limit, "requests per period (0: unlimited)")
	fs.Int64Var(&def.Tokens.Limit, "tpm", def.Tokens.Limit, "OpenAI tokens per period (0: unlimited)")
	fs.Int64Var(&def.InputTokens.Limit, "itpm", def.InputTokens.Limit, "Anthropic input tokens per period (0: unlimited)")
	fs.Int64Var(&def.OutputTokens.Limit, "otpm", def.OutputTokens.Limit, "Anthropic output tokens per period (0: unlimited)")
	fs.DurationVar(&lat.TimeToFirstToken, "ttft", lat.TimeToFirstToken, "time to first token")
	fs.DurationVar(&lat.PerOutputToken, "per-token", lat.PerOutputToken, "time per output token")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "seed of the output-length draws")
	fs.Int64Var(&cfg.DefaultMaxTokens, "default-max-tokens", 1024, "OpenAI output cap when a request sets none")
	fs.Float64Var(&cfg.Output.MinFraction, "min-output", 0.25, "least output, as a fraction of the output cap")
	fs.Float64Var(&cfg.Output.MaxFraction, "max-output", 1, "most output, as a fraction of the output cap")
	pools := poolFlags{}
	fs.Var(pools, "pool", "limits of one key (and model): KEY[:MODEL]=RPM,TPM,ITPM,OTPM; repeatable")
	var exhausted keyList
	fs.Var(&exhausted, "quota-exhausted", "OpenAI key whose requests get 429 insufficient_quota; repeatable")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.Default, cfg.Latency = def, &lat
	cfg.Pools, cfg.QuotaExhaustedKeys = pools.withPeriod(def.Period), exhausted
	if cfg.Default == (providersim.Limits{Period: def.Period}) {
		return errors.New("every limit is 0: nothing to simulate")
	}

	sim, err := providersim.New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", *listen, err)
	}
	if _, err := fmt.Fprintf(out, "listening on %s\n", ln.Addr()); err != nil {
		ln.Close()
		return fmt.Errorf("announcing the address: %w", err)
	}

	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	return nil
}
