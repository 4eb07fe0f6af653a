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

// maxMessage is the server's default max_receive_message_bytes.
const maxMessage = 64 << 20

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "HTTP address to serve REST on")
	backend := flag.String("backend", "127.0.0.1:50051", "gRPC address of the batchgrpc server")
	idle := flag.Duration("upload-idle-timeout", 30*time.Second,
		"abandon a request body (an upload or JSON) that sends no byte for this long: 408, nothing stored")
	headerTimeout := flag.Duration("read-header-timeout", 10*time.Second,
		"close a connection whose request headers take longer than this")
	maxBody := flag.Int64("max-body-bytes", rest.DefaultMaxBodyBytes,
		"largest JSON request body (uploads are streamed, the server caps the file)")
	flag.Parse()

	conn, err := grpc.NewClient(*backend,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// The server's own message limit both ways (a full page of events
		// is more than gRPC's default 4 MB).
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessage), grpc.MaxCallSendMsgSize(maxMessage)),
	)
	if err != nil {
		log.Fatalf("backend %s: %v", *backend, err)
	}
	defer conn.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	handler, err := rest.Handler(ctx, conn, rest.Options{BodyIdleTimeout: *idle, MaxBodyBytes: *maxBody})
	if err != nil {
		log.Fatalf("routes: %v", err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("listen %s: %v", *listen, err)
	}
	server := &http.Server{
		Handler: handler,
		// Slow headers hold a connection for nothing; a slow body is cut by
		// the idle timeout, a keep-alive connection after IdleTimeout.
		ReadHeaderTimeout: *headerTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
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
