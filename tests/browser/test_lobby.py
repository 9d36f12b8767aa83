"""The lobby in a real browser: creating a room (guest mode) and finding it by filters."""

from __future__ import annotations

from playwright.async_api import expect

from tests.browser.conftest import OUT, Users
from tests.browser.helpers import create_room


async def test_create_a_room_and_find_it_by_topic_and_language(users: Users) -> None:
    host = await users.open("host")
    await expect(host.get_by_test_id("no-rooms")).to_be_visible()
    room_id = await create_room(
        host, name="Alice", title="Jazz and tea", topics="music, jazz", languages="en, zh"
    )
    # The host is on stage, as host, and keeps a token with the host grant for the room.
    tile = host.get_by_test_id("stage-member")
    await expect(tile).to_have_count(1)
    await expect(tile).to_contain_text("Alice")
    await expect(tile).to_contain_text("Host")
    await expect(host.get_by_test_id("mod-panel")).to_be_visible()
    stored = await host.evaluate("JSON.parse(localStorage.getItem('chatrooms.hostTokens'))")
    assert room_id in stored
    assert await host.evaluate("JSON.parse(localStorage.getItem('chatrooms.identity')).guest")

    guest = await users.open("guest")
    card = guest.get_by_test_id("room-card")
    await expect(card).to_have_count(1)
    await expect(card.get_by_role("heading")).to_have_text("Jazz and tea")
    await expect(card.get_by_test_id("topic-badge")).to_have_text(["#music", "#jazz"])
    await expect(card.get_by_test_id("language-badge")).to_have_text(["English", "Chinese"])
    await expect(card).to_contain_text("Alice")
    await expect(card.get_by_test_id("listener-count")).to_have_text("0 listening")

    topic = guest.get_by_test_id("filter-topic")
    await topic.fill("cooking")
    await expect(guest.get_by_test_id("no-rooms")).to_be_visible()
    await topic.fill("JAZZ")
    await expect(card).to_have_count(1)
    await topic.fill("")
    language = guest.get_by_test_id("filter-language")
    await language.select_option("fr")
    await expect(guest.get_by_test_id("no-rooms")).to_be_visible()
    await language.select_option("zh")
    await expect(card).to_have_count(1)

    # A listener is counted in the lobby.
    await card.get_by_test_id("join-room").click()
    await expect(guest.get_by_test_id("room-title")).to_have_text("Jazz and tea")
    lobby = await users.open("lobby")
    await expect(lobby.get_by_test_id("listener-count")).to_have_text("1 listening")


async def test_chinese_from_the_browser_language_and_the_switch(users: Users) -> None:
    page = await users.open("zh", locale="zh-CN")
    await expect(page.get_by_role("heading", level=1)).to_have_text("正在直播")
    await expect(page.get_by_test_id("create-submit")).to_have_text("开始直播")
    await page.get_by_test_id("lang").select_option("en")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Live now")
    await page.reload()  # the choice is remembered
    await expect(page.get_by_role("heading", level=1)).to_have_text("Live now")
    await page.get_by_test_id("lang").select_option("zh-CN")
    await expect(page.get_by_test_id("create-submit")).to_have_text("开始直播")
    assert await page.evaluate("document.documentElement.lang") == "zh-CN"
    # The room speaks Chinese too, and switches language without leaving the room.
    await create_room(page, name="小明", title="晚间爵士", topics="音乐", languages="zh")
    await expect(page.get_by_role("heading", name="台上")).to_be_visible()
    await expect(page.get_by_test_id("stage-member")).to_contain_text("房主")
    await expect(page.get_by_test_id("mic")).to_have_text("取消静音")
    OUT.mkdir(exist_ok=True)
    await page.screenshot(path=str(OUT / "room-zh.png"), full_page=True)
    await page.get_by_test_id("lang").select_option("en")
    await expect(page.get_by_role("heading", name="Stage")).to_be_visible()
    await expect(page.get_by_test_id("mic")).to_have_text("Unmute")
    assert await page.evaluate("window.chatrooms.client.phase") == "live"
