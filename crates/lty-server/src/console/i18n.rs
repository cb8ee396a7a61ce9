//! The console's UI text in Chinese (the default) and English: one table,
//! looked up by key. Data (names, codes, API messages) is shown as is.

/// A UI language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    /// The `lang` attribute.
    pub fn tag(self) -> &'static str {
        match self {
            Self::Zh => "zh-CN",
            Self::En => "en",
        }
    }

    /// The text of `key`; the key itself when the table lacks it (a test
    /// checks every key the templates use).
    pub fn t(self, key: &str) -> &'static str {
        match MESSAGES.iter().find(|(k, _, _)| *k == key) {
            Some((_, zh, en)) => match self {
                Self::Zh => zh,
                Self::En => en,
            },
            None => {
                tracing::warn!(key, "console text missing");
                "?"
            }
        }
    }
}

/// `(key, Chinese, English)`.
#[rustfmt::skip]
const MESSAGES: &[(&str, &str, &str)] = &[
    ("app.name", "lty 运营控制台", "lty operator console"),
    ("nav.dashboard", "概览", "Dashboard"),
    ("nav.users", "用户", "Users"),
    ("nav.devices", "设备", "Devices"),
    ("nav.cards", "卡片", "Cards"),
    ("nav.catalog", "目录", "Catalogue"),
    ("nav.voice", "语音会话", "Voice sessions"),
    ("nav.firmware", "固件", "Firmware"),
    ("nav.audit", "审计日志", "Audit log"),
    ("nav.logout", "退出登录", "Log out"),
    ("nav.menu", "主导航", "Main navigation"),
    ("lang.switch", "English", "中文"),
    ("login.title", "登录", "Log in"),
    ("login.username", "用户名", "Username"),
    ("login.password", "密码", "Password"),
    ("login.submit", "登录", "Log in"),
    ("login.bad", "用户名或密码错误", "Wrong username or password"),
    ("login.locked", "登录失败次数过多，账号已暂时锁定，请稍后再试", "Too many failed logins: the account is locked for a while"),
    ("login.limited", "尝试过于频繁，请稍后再试", "Too many attempts; try again later"),
    ("login.missing", "请输入用户名和密码", "Enter a username and a password"),
    ("err.title", "出错了", "Something went wrong"),
    ("err.forbidden", "您的角色无权执行此操作", "Your role may not do this"),
    ("err.csrf", "表单已过期或来源不明，请返回刷新后重试", "The form expired or did not come from this console; go back, reload and retry"),
    ("err.not_found", "找不到该对象", "Not found"),
    ("err.invalid", "输入有误", "Invalid input"),
    ("err.back", "返回", "Back"),
    ("err.home", "回到概览", "Go to the dashboard"),
    ("common.search", "搜索", "Search"),
    ("common.none", "暂无数据", "Nothing here yet"),
    ("common.prev", "上一页", "Previous"),
    ("common.next", "下一页", "Next"),
    ("common.page", "页", "page"),
    ("common.total", "共", "Total"),
    ("common.yes", "是", "yes"),
    ("common.no", "否", "no"),
    ("common.confirm", "确认", "Confirm"),
    ("common.cancel", "取消", "Cancel"),
    ("common.save", "保存", "Save"),
    ("common.actions", "操作", "Actions"),
    ("common.created", "创建时间", "Created"),
    ("common.id", "ID", "ID"),
    ("common.done", "操作已完成", "Done"),
    ("common.online", "在线", "online"),
    ("common.offline", "离线", "offline"),
    ("common.filter", "筛选", "Filter"),
    ("common.all", "全部", "All"),
    ("users.title", "用户与家庭", "Families and users"),
    ("users.query", "手机号、昵称、用户名、设备 MAC 或用户 ID", "Phone, nickname, username, device MAC or user id"),
    ("users.username", "用户名", "Username"),
    ("users.nickname", "昵称", "Nickname"),
    ("users.phone", "手机号", "Phone"),
    ("users.state", "状态", "State"),
    ("users.active", "正常", "active"),
    ("users.disabled", "已停用", "disabled"),
    ("users.joined", "注册时间", "Joined"),
    ("users.no_match", "没有找到匹配的用户", "No user matches"),
    ("users.hint", "输入设备贴纸上的 MAC 地址，即可找到对应的家庭。", "Type the MAC address on a device's sticker to find its family."),
    ("user.devices", "设备", "Devices"),
    ("user.no_devices", "没有绑定设备", "No device bound"),
    ("user.mac", "MAC 地址", "MAC address"),
    ("user.device_name", "名称", "Name"),
    ("user.bound_at", "绑定时间", "Bound"),
    ("user.last_seen", "最近在线", "Last seen"),
    ("user.subscription", "会员", "Subscription"),
    ("user.plan", "当前套餐", "Plan"),
    ("user.ends_at", "到期时间", "Ends"),
    ("user.usage", "用量", "Usage"),
    ("user.chat_today", "今日对话条数", "Chat messages today"),
    ("user.conversations", "对话总数", "Conversations"),
    ("user.voice_running", "进行中的语音会话", "Voice sessions running"),
    ("user.achievements", "已获得的成就", "Achievements unlocked"),
    ("user.cards", "最近刷卡", "Recent card scans"),
    ("user.disable", "停用账号", "Disable account"),
    ("user.enable", "启用账号", "Enable account"),
    ("user.reset_quota", "重置今日额度", "Reset today's quota"),
    ("user.grant", "赠送套餐", "Grant a plan"),
    ("user.grant_plan", "套餐", "Plan"),
    ("user.grant_days", "天数", "Days"),
    ("user.reason", "原因（可选）", "Reason (optional)"),
    ("user.confirm_disable", "确定停用该用户？停用后其所有登录立即失效，设备连接将断开。", "Disable this user? Every login stops working at once and device connections close."),
    ("user.confirm_enable", "确定重新启用该用户？", "Enable this user again?"),
    ("user.confirm_reset", "确定将该用户今日对话额度清零？", "Reset this user's chat count for today to zero?"),
    ("user.confirm_grant", "确定赠送以下套餐？", "Grant this plan?"),
    ("user.done.disable", "用户已停用", "User disabled"),
    ("user.done.enable", "用户已启用", "User enabled"),
    ("user.done.reset", "今日额度已重置", "Quota reset"),
    ("user.done.grant", "套餐已赠送", "Plan granted"),
    ("user.free", "免费版", "Free"),
    ("cards.title", "卡片批次", "Card batches"),
    ("cards.create", "生成一批卡片", "Create a batch"),
    ("cards.kind", "类型", "Kind"),
    ("cards.kind.content", "内容卡", "Content"),
    ("cards.kind.membership", "会员卡", "Membership"),
    ("cards.count", "数量", "Count"),
    ("cards.content_ref", "内容（如 story:42）", "Content (e.g. story:42)"),
    ("cards.plan", "会员套餐", "Membership plan"),
    ("cards.days", "会员天数", "Membership days"),
    ("cards.notes", "备注（如门店名称）", "Notes (e.g. the shop)"),
    ("cards.submit", "生成", "Create"),
    ("cards.working", "正在生成卡片…", "Creating the cards…"),
    ("cards.scans", "扫描次数", "Scans"),
    ("cards.users", "用户数", "Users"),
    ("cards.redeemed", "已兑换", "Redeemed"),
    ("cards.state", "状态", "State"),
    ("cards.enabled", "可用", "enabled"),
    ("cards.disabled", "已停用", "disabled"),
    ("cards.download_csv", "下载 CSV", "Download CSV"),
    ("cards.download_zip", "下载 ZIP（含二维码）", "Download ZIP (with QR codes)"),
    ("cards.disable", "停用整批", "Disable the batch"),
    ("cards.enable", "重新启用整批", "Enable the batch again"),
    ("cards.lookup", "查询卡号", "Look up a code"),
    ("cards.code", "卡号", "Code"),
    ("cards.batch", "批次", "Batch"),
    ("cards.disable_card", "停用此卡", "Disable this card"),
    ("cards.enable_card", "启用此卡", "Enable this card"),
    ("cards.confirm_disable", "确定停用整批卡片？已售出的卡将无法使用。", "Disable every card of this batch? Cards sold will stop working."),
    ("cards.done.create", "卡片已生成，可以下载了", "The batch is ready to download"),
    ("cards.done.disable", "批次状态已更新", "Batch state changed"),
    ("cards.done.card", "卡片状态已更新", "Card state changed"),
    ("plans.title", "套餐", "Plans"),
    ("plans.code", "代码", "Code"),
    ("plans.name", "名称", "Name"),
    ("plans.messages", "每日对话条数", "Chat messages per day"),
    ("plans.minutes", "每日语音分钟", "Voice minutes per day"),
    ("plans.price", "价格（分）", "Price (fen)"),
    ("plans.currency", "币种", "Currency"),
    ("plans.active", "上架", "Offered"),
    ("plans.edit", "编辑", "Edit"),
    ("plans.retire", "下架", "Retire"),
    ("plans.create", "新建套餐", "New plan"),
    ("plans.edit_title", "编辑套餐", "Edit plan"),
    ("plans.done", "套餐已保存", "Plan saved"),
    ("plans.superadmin", "修改套餐需要超级管理员角色", "Changing plans needs the superadmin role"),
    ("catalog.done", "已保存", "Saved"),
    ("personas.title", "角色", "Personas"),
    ("personas.slug", "标识", "Slug"),
    ("personas.prompt", "系统提示词", "System prompt"),
    ("personas.greeting", "开场白", "Greeting"),
    ("personas.voice", "音色", "Voice"),
    ("personas.age_min", "最小年龄", "Youngest age"),
    ("personas.age_max", "最大年龄", "Oldest age"),
    ("personas.ages", "年龄", "Ages"),
    ("personas.create", "新建角色", "New persona"),
    ("personas.edit_title", "编辑角色", "Edit persona"),
    ("achievements.title", "成就", "Achievements"),
    ("achievements.description", "描述", "Description"),
    ("achievements.icon", "图标", "Icon"),
    ("achievements.threshold", "达成条件（次数）", "Threshold"),
    ("achievements.event", "事件类型", "Event kind"),
    ("achievements.rule", "规则", "Rule"),
    ("achievements.total", "累计", "Running total"),
    ("achievements.streak", "连续天数", "Streak of days"),
    ("achievements.create", "新建成就", "New achievement"),
    ("achievements.edit_title", "编辑成就", "Edit achievement"),
    ("conv.title", "对话记录（只读）", "Conversations (read-only)"),
    ("conv.title_col", "标题", "Title"),
    ("conv.updated", "最近活动", "Last activity"),
    ("conv.child", "孩子", "Child"),
    ("conv.assistant", "助手", "Assistant"),
    ("conv.moderated", "已审核拦截", "moderated"),
    ("conv.open", "查看对话记录", "Read conversations"),
    ("fw.title", "固件版本", "Firmware releases"),
    ("fw.board", "板型", "Board"),
    ("fw.version", "版本", "Version"),
    ("fw.size", "大小（字节）", "Size (bytes)"),
    ("fw.offer", "重新上架", "Offer again"),
    ("fw.upload_hint", "仅限超级管理员。应用镜像（.bin，首字节 0xE9，最大 8 MiB）；同一板型的设备会在下次启动时获得最新的已上架版本。", "Superadmin only. The application image (.bin, first byte 0xE9, at most 8 MiB); devices of the board are offered the newest active release at their next boot."),
    ("fw.upload", "上传固件", "Upload firmware"),
    ("fw.notes", "说明（可选）", "Notes (optional)"),
    ("fw.file", "固件文件", "Firmware image"),
    ("fw.submit", "上传", "Upload"),
    ("fw.uploading", "正在上传…", "Uploading…"),
    ("fw.uploaded", "固件已上传", "Firmware uploaded"),
    ("voice.title", "进行中的语音会话", "Running voice sessions"),
    ("voice.task", "任务 ID", "Task id"),
    ("voice.user", "用户", "User"),
    ("voice.status", "状态", "Status"),
    ("voice.started", "开始时间", "Started"),
    ("voice.running", "已运行（秒）", "Running (s)"),
    ("voice.stop", "结束会话", "Stop"),
    ("voice.confirm_stop", "确定结束该语音会话？", "Stop this voice session?"),
    ("voice.done", "语音会话已结束", "Voice session stopped"),
    ("audit.title", "审计日志", "Audit log"),
    ("audit.admin", "操作员 ID", "Operator id"),
    ("audit.operator", "操作员", "Operator"),
    ("audit.action", "操作（如 user. 或 user.disable）", "Action (e.g. user. or user.disable)"),
    ("audit.action_col", "操作", "Action"),
    ("audit.target", "对象", "Target"),
    ("audit.target_type", "对象类型", "Target type"),
    ("audit.target_id", "对象 ID", "Target id"),
    ("audit.since", "起始日期", "From"),
    ("audit.until", "截止日期", "Until"),
    ("audit.details", "详情", "Details"),
    ("audit.time", "时间", "Time"),
    ("audit.ip", "IP", "IP"),
    ("dash.title", "运营概览", "Overview"),
    ("dash.users", "用户总数", "Users"),
    ("dash.active_users", "正常用户", "Active users"),
    ("dash.bound", "已绑定设备", "Bound devices"),
    ("dash.online", "当前在线设备", "Devices online now"),
    ("dash.sockets", "本实例连接", "Sockets on this instance"),
    ("dash.voice_running", "进行中的语音会话", "Voice sessions running"),
    ("dash.voice_total", "累计语音分钟", "Voice minutes, all time"),
    ("dash.messages", "每日对话条数", "Chat messages per day"),
    ("dash.voice_minutes", "每日语音分钟", "Voice minutes per day"),
    ("dash.scans", "各批次刷卡次数", "Card scans per batch"),
    ("dash.errors", "上游错误", "Upstream errors"),
    ("dash.no_errors", "本实例启动以来没有上游错误", "No upstream errors since this instance started"),
    ("dash.range_1", "最近 24 小时", "Last 24 hours"),
    ("dash.messages_hourly", "每小时对话条数", "Chat messages per hour"),
    ("dash.voice_minutes_hourly", "每小时语音分钟", "Voice minutes per hour"),
    ("dash.hours_note", "按小时统计（UTC），最后一栏是当前小时。", "Per clock hour (UTC); the last bar is the current hour so far."),
    ("dash.range_7", "7 天", "7 days"),
    ("dash.range_30", "30 天", "30 days"),
    ("devices.title", "设备", "Devices"),
    ("devices.mac", "MAC 地址（或其一部分）", "MAC address (or part of one)"),
    ("devices.online_only", "仅显示在线", "Online only"),
    ("devices.kind", "类型", "Kind"),
    ("devices.kind_all", "全部设备", "All devices"),
    ("devices.kind_xiaozhi", "小智设备", "xiaozhi devices"),
    ("devices.board", "型号", "Board"),
    ("devices.firmware", "固件版本", "Firmware"),
    ("devices.firmware_all", "全部版本", "Any version"),
    ("devices.last_check", "最近 OTA 检查", "Last OTA check"),
    ("devices.user", "家庭（用户）", "Family (user)"),
    ("devices.unbound", "未绑定", "unbound"),
    ("devices.push", "推送测试消息", "Push a test message"),
    ("devices.unbind", "解除绑定", "Unbind"),
    ("devices.revoke", "吊销设备密钥", "Revoke the secret"),
    ("devices.confirm_unbind", "确定解除该设备的绑定？", "Unbind this device?"),
    ("devices.confirm_revoke", "确定吊销该设备的密钥？设备需要重新激活。", "Revoke this device's secret? It must be provisioned again."),
    ("devices.done", "设备操作已完成", "Device action done"),
    ("devices.live", "在线状态实时更新", "Online state updates live"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_listed_once_with_both_languages() {
        let mut keys: Vec<&str> = MESSAGES.iter().map(|(k, _, _)| *k).collect();
        keys.sort_unstable();
        let before = keys.len();
        keys.dedup();
        assert_eq!(before, keys.len(), "duplicate console text keys");
        assert!(
            MESSAGES
                .iter()
                .all(|(_, zh, en)| !zh.is_empty() && !en.is_empty())
        );
    }

    #[test]
    fn every_key_the_pages_use_is_listed() {
        // Keys appear in the sources as `t("...")` and `.t("...")`.
        let sources = [
            include_str!("session.rs"),
            include_str!("page.rs"),
            include_str!("users.rs"),
            include_str!("cards.rs"),
            include_str!("catalog.rs"),
            include_str!("personas.rs"),
            include_str!("achievements.rs"),
            include_str!("voice.rs"),
            include_str!("conversations.rs"),
            include_str!("firmware.rs"),
            include_str!("audit.rs"),
            include_str!("dashboard.rs"),
            include_str!("devices.rs"),
        ];
        for src in sources {
            for piece in src.split("t(\"").skip(1) {
                let key = piece.split('"').next().unwrap_or("");
                if key.contains('.') && !key.contains(' ') {
                    assert!(
                        MESSAGES.iter().any(|(k, _, _)| *k == key),
                        "console text {key:?} is missing"
                    );
                }
            }
        }
    }
}
