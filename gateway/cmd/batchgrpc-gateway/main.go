// Command batchgrpc-gateway is the REST sidecar of batchgrpc: it takes the
// upstream APIs' JSON on their HTTP routes (proto google.api.http rules) and
// calls the batchgrpc server over gRPC.
package main

import (
	"context"
	"errors"
	"flag"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"batchgrpc.invalid/gateway/internal/rest"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "HTTP address to serve REST on")
	backend := flag.String("backend", "127.0.0.1:50051", "gRPC address of the batchgrpc server")
	flag.Parse()

	conn, err := grpc.NewClient(*backend, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatalf("backend %s: %v", *backend, err)
	}
	defer conn.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	handler, err := rest.Handler(ctx, conn)
	if err != nil {
		log.Fatalf("routes: %v", err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("listen %s: %v", *listen, err)
	}
	server := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = server.Shutdown(shutdown)
	}()
	// The bound address, so that --listen 127.0.0.1:0 can be found.
	log.Printf("batchgrpc-gateway listening on %s, backend %s", ln.Addr(), *backend)
	if err := server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
