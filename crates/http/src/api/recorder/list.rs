//! `/api/0/list`: the users the caller may see (those with a device), a user's devices, or
//! the months in which a device has locations (as the Recorder's `.rec` file paths).

use super::params::Params;
use super::{json_answer, Visible};
use crate::api::auth::SignedIn;
use crate::api::error::ApiResult;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// `GET|POST /api/0/list[?user=U[&device=D]]`: `{"results": [...]}`, empty for anything the
/// caller may not see. Months: those up to the month of `to` (default now) that hold a
/// location, `rec/<user>/<device>/YYYY-MM.rec`, under the history rule.
pub async fn list(SignedIn { state, caller }: SignedIn, params: Params) -> ApiResult<Response> {
    let (_, to) = match params.window(mytracks_store::now()) {
        Ok(window) => window,
        Err(refused) => return Ok(refused.into_response()),
    };
    let username = &caller.user.username;
    let user = params.field("user");
    let device = params.field("device");
    let results: Vec<String> = match (user, device) {
        (None, _) => {
            let visible = Visible::of(&state, username, false).await?;
            let mut owners: Vec<String> = visible.devices.iter().map(|(_, o)| o.clone()).collect();
            owners.dedup();
            owners
        }
        (Some(user), None) => {
            let visible = Visible::of(&state, username, false).await?;
            match visible.owner(&user) {
                Some(owner) => visible
                    .devices_of(owner, None)
                    .iter()
                    .map(|(d, _)| d.name.clone())
                    .collect(),
                None => Vec::new(),
            }
        }
        (Some(user), Some(device)) => {
            let visible = Visible::of(&state, username, true).await?;
            let selected = visible.select(Some(&user), Some(&device));
            match selected.first() {
                Some((device, owner)) => {
                    let until = end_of_month(to);
                    state
                        .tracking
                        .store
                        .location_months(device.id, until)
                        .await?
                        .into_iter()
                        .map(|month| format!("rec/{owner}/{}/{month}.rec", device.name))
                        .collect()
                }
                None => Vec::new(),
            }
        }
    };
    Ok(json_answer(&json!({ "results": results })))
}

/// The last second of the UTC month that holds `t`.
fn end_of_month(t: i64) -> i64 {
    let Ok(at) = time::OffsetDateTime::from_unix_timestamp(t) else {
        return t;
    };
    let (year, month) = match at.month() {
        time::Month::December => (at.year() + 1, time::Month::January),
        month => (at.year(), month.next()),
    };
    time::Date::from_calendar_date(year, month, 1)
        .map(|d| d.midnight().assume_utc().unix_timestamp() - 1)
        .unwrap_or(t)
}

#[cfg(test)]
mod tests {
    #[test]
    fn months_end_at_their_last_second() {
        assert_eq!(super::end_of_month(1_709_251_200), 1_711_929_599); // March 2024
        assert_eq!(super::end_of_month(1_703_980_800), 1_704_067_199); // December 2023
    }
}
