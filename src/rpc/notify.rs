//! `notify_scripts`: each action-script stage becomes a
//! `criu_resp{type=NOTIFY, success=true, notify{script, pid}}` and criu
//! waits for `criu_req{type=NOTIFY, notify_success=true}`; any other answer
//! (or the client going away) fails the stage like a failing script.

use std::os::fd::OwnedFd;

use anyhow::{bail, Context, Result};

use super::pb::{CriuNotify, CriuReqType, CriuResp};
use super::wire;
use crate::scripts::{self, Action};

/// Sends notifications on the request's socket.
pub struct RpcNotifier {
    sk: OwnedFd,
}

impl scripts::Notifier for RpcNotifier {
    fn notify(&mut self, action: Action, pid: Option<i32>) -> Result<()> {
        let resp = CriuResp {
            r#type: CriuReqType::Notify as i32,
            success: true,
            notify: Some(CriuNotify { script: Some(action.name().to_string()), pid }),
            ..Default::default()
        };
        wire::send_resp(&self.sk, &resp).with_context(|| format!("sending the {action} notification"))?;
        let req = wire::recv_req(&self.sk).with_context(|| format!("waiting for the answer to the {action} notification"))?;
        if req.r#type != CriuReqType::Notify as i32 || req.notify_success != Some(true) {
            let ty = CriuReqType::try_from(req.r#type).map(|t| t.as_str_name().to_string()).unwrap_or(req.r#type.to_string());
            bail!(
                "the RPC client answered the {action} notification with {ty} notify_success={} (it reported a script error)",
                req.notify_success.unwrap_or(false)
            );
        }
        let added = req.opts.as_ref().map(|o| &o.external).filter(|e| !e.is_empty());
        if let (Action::QueryExtFiles, Some(ext)) = (action, added) {
            bail!("the RPC client added external resources at query-ext-files ({}): --external is not supported yet", ext.join(", "));
        }
        Ok(())
    }
}

/// Installs the notifier for one request; removes it when dropped.
pub struct Guard(());

impl Guard {
    pub fn install(sk: &OwnedFd) -> Result<Guard> {
        let sk = sk.try_clone().context("duplicating the RPC socket")?;
        scripts::set_notifier(Some(Box::new(RpcNotifier { sk })));
        Ok(Guard(()))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        scripts::set_notifier(None);
    }
}
