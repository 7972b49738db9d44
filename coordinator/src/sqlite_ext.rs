//! The two things our SQLite connections need that sqlx does not wrap, done on the raw handle:
//!
//! - a `sqrt()` SQL function, because the bundled SQLite is compiled without
//!   `SQLITE_ENABLE_MATH_FUNCTIONS` and the `curves` view needs a standard deviation;
//! - `SQLITE_LIMIT_ATTACHED = 0` on the Query connections, so `ATTACH` (which could open any
//!   other SQLite file on the coordinator host) and `VACUUM INTO` (which attaches, then writes a
//!   new file even on a read-only connection) fail inside SQLite, whatever the text check missed.
//!
//! Both are applied once per connection, from the pool's `after_connect` hook.

use std::os::raw::c_int;

use libsqlite3_sys as ffi;
use sqlx::SqliteConnection;

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
