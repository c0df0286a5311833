package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/annals-dev/annals/watcher"
)

// progressDisplay shows how far an import is: a bar redrawn in place on a
// terminal, else a plain line now and then (a log file or CI output must
// not fill with redraws).
type progressDisplay struct {
	out      io.Writer
	mode     string // bar, lines or none
	width    int    // of the terminal, for the bar
	every    time.Duration
	progress *watcher.ImportProgress
	now      func() time.Time

	mu      sync.Mutex // one writer to out at a time
	started time.Time
	drawn   bool // a bar is on the current line
}

// newProgressDisplay picks the display: "auto" is a bar when out is a
// terminal, lines otherwise.
func newProgressDisplay(out *os.File, mode string) (*progressDisplay, error) {
	d := &progressDisplay{out: out, mode: mode, width: 80, every: 10 * time.Second, progress: new(watcher.ImportProgress), now: time.Now}
	tty := term.IsTerminal(int(out.Fd()))
	switch mode {
	case "auto":
		d.mode = "lines"
		if tty {
			d.mode = "bar"
		}
	case "bar", "lines", "none":
	default:
		return nil, fmt.Errorf("--progress %q: want auto, bar, lines or none", mode)
	}
	if d.mode == "bar" {
		d.every = 200 * time.Millisecond
		if w, _, err := term.GetSize(int(out.Fd())); err == nil && w > 40 {
			d.width = w
		}
	}
	return d, nil
}

// start shows progress until the returned function is called, which
// draws the last state and ends the line.
func (d *progressDisplay) start() (stop func()) {
	d.started = d.now()
	if d.mode == "none" {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(d.every)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				d.draw()
			}
		}
	}()
	return func() {
		close(done)
		<-finished
		d.draw()
		d.mu.Lock()
		if d.drawn {
			fmt.Fprintln(d.out)
			d.drawn = false
		}
		d.mu.Unlock()
	}
}

// println writes a line of its own, above the bar.
func (d *progressDisplay) println(line string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.drawn {
		fmt.Fprint(d.out, "\r\033[K")
		d.drawn = false
	}
	fmt.Fprintln(d.out, line)
}

func (d *progressDisplay) draw() {
	d.mu.Lock()
	defer d.mu.Unlock()
	status := d.status()
	if d.mode == "lines" {
		fmt.Fprintln(d.out, "import:", status)
		return
	}
	bar := ""
	if total := d.progress.BytesTotal.Load(); total > 0 {
		cells := max(d.width-len(status)-4, 10)
		done := int(float64(cells) * min(float64(d.progress.BytesRead.Load())/float64(total), 1))
		bar = "[" + strings.Repeat("#", done) + strings.Repeat("-", cells-done) + "] "
	}
	fmt.Fprint(d.out, "\r\033[K"+bar+status)
	d.drawn = true
}

// status is one line: share read, bytes, objects, rate and time left.
func (d *progressDisplay) status() string {
	p := d.progress
	read, total := p.BytesRead.Load(), p.BytesTotal.Load()
	elapsed := d.now().Sub(d.started).Seconds()
	objects, written := p.Objects.Load(), p.Written.Load()
	var b strings.Builder
	if total > 0 {
		fmt.Fprintf(&b, "%3.0f%% %s/%s", 100*min(float64(read)/float64(total), 1), mib(read), mib(total))
	} else {
		fmt.Fprintf(&b, "%s", mib(read))
	}
	fmt.Fprintf(&b, "  %d objects read, %d runs written", objects, written)
	if elapsed > 0 {
		fmt.Fprintf(&b, "  %.0f runs/s", float64(written)/elapsed)
	}
	if total > 0 && read > 0 && read < total && elapsed > 1 {
		left := time.Duration(float64(total-read) / (float64(read) / elapsed) * float64(time.Second))
		fmt.Fprintf(&b, "  ETA %s", left.Round(time.Second))
	}
	return b.String()
}

func mib(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/(1<<20)) }
