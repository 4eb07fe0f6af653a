//! A row source that parses on its own thread.
//!
//! The machines we run on have few cores, and a batch job's row pipeline is
//! two halves of similar cost: parsing the file, then checking rules and
//! encoding events. [`Prefetch`] runs the parsing half of any [`RowSource`]
//! on a second thread, handing rows over in batches through a bounded
//! channel, so the two halves overlap. Rows are swapped, not copied, and the
//! consumer's spent rows travel back with each emptied batch, so once warm
//! neither thread allocates per row.
//!
//! Memory stays bounded: at most `IN_FLIGHT` batches wait in the channel, and
//! a batch is sent once it holds `BATCH_ROWS` rows or `BATCH_BYTES` of text.

use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

use super::{Row, RowSource};
use crate::error::CoreError;

const BATCH_ROWS: usize = 2048;
const BATCH_BYTES: usize = 1 << 20;
const IN_FLIGHT: usize = 2;

/// What the parsing thread sends.
enum Message {
    /// Rows in file order, and the column names first seen in them.
    Rows {
        rows: Vec<Row>,
        len: usize,
        new_names: Vec<String>,
    },
    /// The end of the file.
    Done,
    /// A file-level error: reading cannot go on.
    Failed(CoreError),
}

/// A [`RowSource`] whose `next_row` takes rows another thread parsed.
pub struct Prefetch {
    names: Vec<String>,
    batch: Vec<Row>,
    len: usize,
    next: usize,
    finished: Option<Result<(), CoreError>>,
    rows: Receiver<Message>,
    spent: Sender<Vec<Row>>,
    thread: Option<JoinHandle<()>>,
}

impl Prefetch {
    /// Starts parsing `source` on a new thread.
    ///
    /// # Panics
    /// When the operating system cannot start a thread.
    #[must_use]
    pub fn new(source: Box<dyn RowSource>) -> Self {
        let names = source.names().to_vec();
        let (rows_tx, rows) = mpsc::sync_channel(IN_FLIGHT);
        let (spent, spent_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("batchgrpc-rows".into())
            .spawn(move || produce(source, &rows_tx, &spent_rx))
            .expect("starting the row parsing thread");
        Self {
            names,
            batch: Vec::new(),
            len: 0,
            next: 0,
            finished: None,
            rows,
            spent,
            thread: Some(thread),
        }
    }
}

/// The parsing thread: fills batches until the end, an error, or until the
/// consumer has gone (a send fails).
fn produce(mut source: Box<dyn RowSource>, out: &SyncSender<Message>, spent: &Receiver<Vec<Row>>) {
    let mut names_sent = source.names().len();
    loop {
        let mut rows = spent.try_recv().unwrap_or_default();
        let mut len = 0;
        let mut bytes = 0;
        let mut end = None;
        while len < BATCH_ROWS && bytes < BATCH_BYTES {
            if rows.len() == len {
                rows.push(Row::default());
            }
            match source.next_row(&mut rows[len]) {
                Ok(true) => {
                    bytes += rows[len].text.len() + 64;
                    len += 1;
                }
                Ok(false) => {
                    end = Some(Message::Done);
                    break;
                }
                Err(e) => {
                    end = Some(Message::Failed(e));
                    break;
                }
            }
        }
        let new_names = source.names()[names_sent..].to_vec();
        names_sent = source.names().len();
        if len > 0
            && out
                .send(Message::Rows {
                    rows,
                    len,
                    new_names,
                })
                .is_err()
        {
            return;
        }
        if let Some(end) = end {
            // Nobody left to tell is fine: the consumer was dropped.
            let _ = out.send(end);
            return;
        }
    }
}

impl RowSource for Prefetch {
    fn names(&self) -> &[String] {
        &self.names
    }

    fn next_row(&mut self, row: &mut Row) -> Result<bool, CoreError> {
        while self.next == self.len {
            if let Some(finished) = &self.finished {
                return match finished {
                    Ok(()) => Ok(false),
                    Err(e) => Err(e.clone()),
                };
            }
            let spent = std::mem::take(&mut self.batch);
            if !spent.is_empty() {
                // The thread may have ended; then the rows are just freed.
                let _ = self.spent.send(spent);
            }
            match self.rows.recv() {
                Ok(Message::Rows {
                    rows,
                    len,
                    new_names,
                }) => {
                    self.names.extend(new_names);
                    self.batch = rows;
                    self.len = len;
                    self.next = 0;
                }
                Ok(Message::Done) => self.finished = Some(Ok(())),
                Ok(Message::Failed(e)) => self.finished = Some(Err(e)),
                // The thread panicked (a bug in a parser, not a problem
                // with the file): carry its panic over to this thread.
                Err(mpsc::RecvError) => {
                    let thread = self.thread.take().expect("the parsing thread");
                    match thread.join() {
                        Err(panic) => std::panic::resume_unwind(panic),
                        Ok(()) => unreachable!("the parsing thread ended without a word"),
                    }
                }
            }
        }
        std::mem::swap(row, &mut self.batch[self.next]);
        self.next += 1;
        Ok(true)
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        // Closing our ends makes the thread's next send fail; wait for it so
        // that a dropped reader leaves no thread (or open file) behind.
        let (_, rows) = mpsc::sync_channel(0);
        drop(std::mem::replace(&mut self.rows, rows));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write;
    use std::io::Cursor;

    use super::*;
    use crate::formats::{open, Format, ReadLimits, Resume};

    fn rows_of(mut source: Box<dyn RowSource>) -> (Vec<String>, Vec<(u64, u64, String)>) {
        let mut row = Row::default();
        let mut out = Vec::new();
        while source.next_row(&mut row).unwrap() {
            out.push((row.number, row.offset, row.text.clone()));
        }
        (source.names().to_vec(), out)
    }

    fn csv(rows: usize) -> Vec<u8> {
        let mut text = String::from("a,b\n");
        for i in 0..rows {
            let _ = write!(text, "{i},\"x\ny{i}\"\n");
        }
        text.into_bytes()
    }

    #[test]
    fn gives_the_rows_of_the_source_in_order() {
        for n in [0, 1, BATCH_ROWS - 1, BATCH_ROWS, 3 * BATCH_ROWS + 7] {
            let open_csv = || {
                open(
                    Format::Csv,
                    Cursor::new(csv(n)),
                    ReadLimits::default(),
                    Resume::default(),
                )
                .unwrap()
            };
            let direct = rows_of(open_csv());
            let prefetched = rows_of(Box::new(Prefetch::new(open_csv())));
            assert_eq!(direct.1.len(), n);
            assert_eq!(direct, prefetched);
        }
    }

    #[test]
    fn json_names_arrive_with_their_rows() {
        let mut text = String::from("[");
        for i in 0..5000 {
            if i > 0 {
                text.push(',');
            }
            let _ = write!(text, "{{\"k{}\": {i}}}", i / 1000);
        }
        text.push(']');
        let source = open(
            Format::Json,
            Cursor::new(text.into_bytes()),
            ReadLimits::default(),
            Resume::default(),
        )
        .unwrap();
        let mut prefetch = Prefetch::new(source);
        let mut row = Row::default();
        while prefetch.next_row(&mut row).unwrap() {
            for (id, _) in &row.cells {
                assert!(*id < prefetch.names().len());
            }
        }
        assert_eq!(prefetch.names(), ["k0", "k1", "k2", "k3", "k4"]);
    }

    #[test]
    fn a_file_error_comes_after_the_rows_before_it_and_stays() {
        let mut text = csv(3000);
        text.extend_from_slice(b"1,\"unterminated\n");
        let source = open(
            Format::Csv,
            Cursor::new(text),
            ReadLimits::default(),
            Resume::default(),
        )
        .unwrap();
        let mut prefetch = Prefetch::new(source);
        let mut row = Row::default();
        let mut count = 0;
        let err = loop {
            match prefetch.next_row(&mut row) {
                Ok(true) => count += 1,
                Ok(false) => panic!("the error was lost"),
                Err(e) => break e,
            }
        };
        assert_eq!(count, 3000);
        assert_eq!(prefetch.next_row(&mut row).unwrap_err(), err);
    }

    #[test]
    fn dropping_early_stops_the_thread() {
        let source = open(
            Format::Csv,
            Cursor::new(csv(50_000)),
            ReadLimits::default(),
            Resume::default(),
        )
        .unwrap();
        let mut prefetch = Prefetch::new(source);
        let mut row = Row::default();
        assert!(prefetch.next_row(&mut row).unwrap());
        drop(prefetch); // joins the thread; hanging here would be the bug
    }
}
