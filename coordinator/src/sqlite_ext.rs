//! The things our SQLite connections need that sqlx does not wrap, done on the raw handle:
//!
//! - a `sqrt()` SQL function, because the bundled SQLite is compiled without
//!   `SQLITE_ENABLE_MATH_FUNCTIONS` and the `curves` view needs a standard deviation;
//! - `SQLITE_LIMIT_ATTACHED = 0` on the Query connections, so `ATTACH` (which could open any
//!   other SQLite file on the coordinator host) and `VACUUM INTO` (which attaches, then writes a
//!   new file even on a read-only connection) fail inside SQLite, whatever the text check missed;
//! - `SQLITE_LIMIT_LENGTH` and `SQLITE_LIMIT_SQL_LENGTH` on the read connections, so that
//!   `zeroblob(400000000)` or `printf('%.*c', 400000000, 'x')` fail inside SQLite ("string or
//!   blob too big") before the value is built, instead of after it is in memory twice;
//! - [`Interrupter`]: `sqlite3_interrupt` from another thread, for a connection whose worker
//!   thread does not come back.
//!
//! The function and the limits are applied once per connection, from the pool's
//! `after_connect` hook; a Query sets the length limit to its own byte cap while it runs.

use std::os::raw::c_int;
use std::ptr::NonNull;

use libsqlite3_sys as ffi;
use sqlx::SqliteConnection;
use sqlx::sqlite::LockedSqliteHandle;

/// Registers `sqrt(x)` on this connection: the square root of a number, NULL for NULL, and NULL
/// for negative input (SQLite's own math functions do the same).
pub(crate) async fn register_sqrt(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    // SAFETY: `as_raw_handle` is a live connection that the locked handle keeps the sqlx worker
    // thread off while we call into it; the name is NUL-terminated and static; the function
    // takes no user data, so there is nothing to free.
    let rc = unsafe {
        ffi::sqlite3_create_function_v2(
            handle.as_raw_handle().as_ptr(),
            c"sqrt".as_ptr(),
            1,
            ffi::SQLITE_UTF8 | ffi::SQLITE_DETERMINISTIC | ffi::SQLITE_INNOCUOUS,
            std::ptr::null_mut(),
            Some(sqrt_func),
            None,
            None,
            None,
        )
    };
    check(rc, "registering sqrt()")
}

/// Forbids ATTACH on this connection (and with it `VACUUM INTO`).
pub(crate) async fn forbid_attach(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    // SAFETY: as above; sqlite3_limit only reads/writes the connection's limit table.
    unsafe {
        ffi::sqlite3_limit(
            handle.as_raw_handle().as_ptr(),
            ffi::SQLITE_LIMIT_ATTACHED,
            0,
        );
    }
    Ok(())
}

/// Sets the largest string, blob or row (`SQLITE_LIMIT_LENGTH`) and the longest SQL text
/// (`SQLITE_LIMIT_SQL_LENGTH`) this connection accepts, in bytes.
pub(crate) async fn limit_lengths(
    conn: &mut SqliteConnection,
    value_bytes: usize,
    sql_bytes: usize,
) -> Result<(), sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    set_length_limit(&mut handle, value_bytes);
    // SAFETY: as in `forbid_attach`.
    unsafe {
        ffi::sqlite3_limit(
            handle.as_raw_handle().as_ptr(),
            ffi::SQLITE_LIMIT_SQL_LENGTH,
            clamp(sql_bytes),
        );
    }
    Ok(())
}

/// Sets `SQLITE_LIMIT_LENGTH` (the largest string, blob or row) on a locked connection. SQLite
/// checks it where a value is made (`zeroblob`, `printf`, `||`, …) and where a row is read, at
/// run time, so it also holds for statements prepared before.
pub(crate) fn set_length_limit(handle: &mut LockedSqliteHandle<'_>, bytes: usize) {
    // SAFETY: the locked handle keeps the sqlx worker thread off the connection while we call
    // into it; sqlite3_limit only reads/writes the connection's limit table.
    unsafe {
        ffi::sqlite3_limit(
            handle.as_raw_handle().as_ptr(),
            ffi::SQLITE_LIMIT_LENGTH,
            clamp(bytes),
        );
    }
}

/// A byte count as SQLite's `int` limit (whose own ceiling is far below `i32::MAX` anyway).
fn clamp(bytes: usize) -> c_int {
    c_int::try_from(bytes).unwrap_or(c_int::MAX).max(1)
}

/// The raw handle of a connection, to interrupt it from another thread while its sqlx worker
/// thread is busy (`sqlite3_interrupt` is the one SQLite call documented as safe from any
/// thread while the connection is in use).
#[derive(Clone, Copy)]
pub(crate) struct Interrupter(NonNull<ffi::sqlite3>);

// SAFETY: the pointer is only ever passed to `sqlite3_interrupt`, which SQLite allows from any
// thread (the bundled library is built thread-safe).
unsafe impl Send for Interrupter {}

impl Interrupter {
    /// The handle of a locked connection.
    pub(crate) fn of(handle: &mut LockedSqliteHandle<'_>) -> Interrupter {
        Interrupter(handle.as_raw_handle())
    }

    /// Asks SQLite to abandon what the connection is doing (a statement in the VM stops at
    /// its next instruction; the parser stops at its next token).
    ///
    /// # Safety
    /// The connection must still be open: the caller holds the `SqliteConnection` it came
    /// from (its worker thread closes the handle only after that is dropped) for as long as it
    /// may call this.
    pub(crate) unsafe fn interrupt(self) {
        // SAFETY: the handle is open (the caller's promise); sqlite3_interrupt is thread-safe.
        unsafe { ffi::sqlite3_interrupt(self.0.as_ptr()) }
    }
}

fn check(rc: c_int, what: &str) -> Result<(), sqlx::Error> {
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(sqlx::Error::Protocol(format!(
            "{what} failed with SQLite code {rc}"
        )))
    }
}

/// The C entry point of `sqrt(x)`.
unsafe extern "C" fn sqrt_func(
    ctx: *mut ffi::sqlite3_context,
    n_arg: c_int,
    args: *mut *mut ffi::sqlite3_value,
) {
    // SAFETY: SQLite calls this with `n_arg` valid argument pointers (1, as registered) and a
    // live context; we only read the argument and set the result.
    unsafe {
        if n_arg != 1 || ffi::sqlite3_value_type(*args) == ffi::SQLITE_NULL {
            ffi::sqlite3_result_null(ctx);
            return;
        }
        let x = ffi::sqlite3_value_double(*args);
        if x >= 0.0 {
            ffi::sqlite3_result_double(ctx, x.sqrt());
        } else {
            ffi::sqlite3_result_null(ctx);
        }
    }
}
