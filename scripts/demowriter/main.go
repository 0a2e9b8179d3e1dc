// Command demowriter appends sample logs for the demo: an nginx-style
// access log and an application log whose errors carry multiline stack
// traces. It prints how many events it wrote to each file.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"
)

func main() {
	dir := flag.String("dir", ".demo/logs", "directory for access.log and app.log")
	n := flag.Int("n", 2000, "access log lines to write")
	rate := flag.Int("rate", 400, "access log lines per second")
	flag.Parse()
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	access := open(filepath.Join(*dir, "access.log"))
	app := open(filepath.Join(*dir, "app.log"))
	paths := []string{"/", "/cart", "/api/items", "/login", "/static/app.js"}
	tick := time.NewTicker(time.Second / time.Duration(max(*rate/10, 1)))
	defer tick.Stop()
	appEvents := 0
	for i := 0; i < *n; i++ {
		now := time.Now()
		status := 200
		if rand.IntN(20) == 0 {
			status = 500
		}
		fmt.Fprintf(access, "10.0.%d.%d - - [%s] \"GET %s HTTP/1.1\" %d %d \"-\" \"demo/1.0\" seq=%d\n",
			rand.IntN(255), rand.IntN(255), now.Format("02/Jan/2006:15:04:05 -0700"), paths[rand.IntN(len(paths))], status, 100+rand.IntN(5000), i)
		if i%10 == 0 {
			appEvents++
			if status == 500 || i%50 == 0 {
				fmt.Fprintf(app, "%s ERROR request failed seq=%d\njava.lang.IllegalStateException: cart is empty\n\tat shop.Cart.checkout(Cart.java:42)\n\tat shop.Api.handle(Api.java:17)\n", now.Format(time.RFC3339Nano), i)
			} else {
				fmt.Fprintf(app, "%s INFO served request seq=%d\n", now.Format(time.RFC3339Nano), i)
			}
		}
		if i%(max(*rate/10, 1)) == 0 {
			access.Flush()
			app.Flush()
			<-tick.C
		}
	}
	access.Flush()
	app.Flush()
	fmt.Printf("access.log %d\napp.log %d\n", *n, appEvents)
}

func open(p string) *bufio.Writer {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	return bufio.NewWriter(f)
}
