"""Texts shown to a portal's people (install page, admin notifications), in the portal's language.

Russian for the languages of the Russian-speaking Bitrix24 zones, English for every other.
Placeholders use ``str.format`` names; values are escaped by the caller where HTML is produced.
"""

from __future__ import annotations

RU_LANGUAGES = frozenset({"ru", "by", "kz", "ua", "uz"})

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "title": "Installing the app",
        "ok": "The app is installed and ready: every feature it needs is available on this portal.",
        "ok_partial": "The app is installed. It works; the features marked below will switch on by "
        "themselves once the portal has what they need.",
        "missing": "The installation cannot be finished yet: this portal lacks what a required feature "
        "needs. Nothing has been changed on the portal that would get in your way.",
        "pending": "The app is installed. The portal could not tell us everything it has right now; "
        "we will ask again within the hour.",
        "not_checked": "The app is installed. The portal's capabilities have not been checked yet; "
        "we will check within the hour.",
        "finish_again": "When the portal has been updated, open the app again: the installation "
        "finishes by itself.",
        "feature": "Feature",
        "status": "Status",
        "available": "available",
        "missing_status": "missing",
        "unknown": "not known yet",
        "required": "required",
        "optional": "optional",
        "lacks_methods": "Missing methods: {names}",
        "lacks_events": "Missing events: {names}",
        "lacks_placements": "Missing places in the interface (widgets): {names}",
        "lacks_scopes": "Permissions not granted: {names}",
        "lacks_portal_scopes": "Permissions this portal does not offer (its module is missing): {names}",
        "unknown_items": "Could not be checked: {names}",
        "todo_title": "What to do",
        "todo_box_update": "Install the Bitrix24 updates: in the admin panel, Marketplace → Platform "
        "update ({url}).",
        "todo_box_module": "Make sure the module “{module}” is installed and switched on: Settings → "
        "Product settings → Modules ({url}).",
        "todo_cloud_module": "Switch on the tool “{module}” in the portal's settings, or check that your "
        "Bitrix24 plan includes it.",
        "todo_scopes": "Give the app the permissions {names}: reinstall it from the app's page in "
        "Applications and accept the permissions.",
        "network_title": "Network access this self-hosted Bitrix24 needs",
        "network_oauth": "Outgoing HTTPS from the portal to oauth.bitrix.info (the authorization "
        "server): without it, no app can call the portal's REST API.",
        "network_queue": "Events leave the portal through the Bitrix24 cloud event queue, whose servers "
        "then call this app at {events_url}: the portal must reach the queue (addresses published at "
        "https://dl.bitrix24.com/webhook/app-world.json).",
        "network_rest": "Incoming HTTPS to the portal's /rest/ address from the app's servers.",
        "kind_box": "self-hosted Bitrix24",
        "kind_cloud": "Bitrix24 cloud",
        "notify_missing": "The app “{app}” cannot use some of its features on this portal: {items}. {todo}",
        "notify_available": "Good news: the app's features {names} are now available on this portal "
        "and have switched on.",
        "notify_todo_box": "Install the Bitrix24 updates and enable the modules they need "
        "(admin panel → Marketplace → Platform update).",
        "notify_todo_cloud": "Check that the tools they need are switched on and included in your plan.",
        "hook_blocked": "[b24app] {label}: changes made on the portal{since} did not arrive "
        "through the outgoing webhook. The app now reads the changes through the incoming webhook "
        "(change polling), so none is lost. {advice}",
        "hook_since": " since {since}",
        "hook_back": "[b24app] Events from the portal arrive again through the outgoing webhook: the "
        "event queue is reachable. The app stopped polling changes.",
    },
    "ru": {
        "title": "Установка приложения",
        "ok": "Приложение установлено и готово к работе: всё, что ему нужно, на портале есть.",
        "ok_partial": "Приложение установлено и работает. Отмеченные ниже функции включатся сами, "
        "когда на портале появится то, что им нужно.",
        "missing": "Установку пока нельзя завершить: на портале нет того, что нужно обязательной функции. "
        "На портале ничего не изменено.",
        "pending": "Приложение установлено. Портал сейчас не смог сообщить всё о своих возможностях; "
        "мы спросим снова в течение часа.",
        "not_checked": "Приложение установлено. Возможности портала ещё не проверены; мы проверим их в "
        "течение часа.",
        "finish_again": "Когда портал будет обновлён, откройте приложение снова — установка завершится сама.",
        "feature": "Функция",
        "status": "Состояние",
        "available": "доступна",
        "missing_status": "недоступна",
        "unknown": "пока неизвестно",
        "required": "обязательная",
        "optional": "необязательная",
        "lacks_methods": "Нет методов: {names}",
        "lacks_events": "Нет событий: {names}",
        "lacks_placements": "Нет мест встраивания (виджетов): {names}",
        "lacks_scopes": "Не выданы права: {names}",
        "lacks_portal_scopes": "Права, которых на портале нет (не хватает модуля): {names}",
        "unknown_items": "Не удалось проверить: {names}",
        "todo_title": "Что сделать",
        "todo_box_update": "Установите обновления Битрикс24: в административной панели "
        "Marketplace → Обновление платформы ({url}).",
        "todo_box_module": "Убедитесь, что модуль «{module}» установлен и включён: Настройки → "
        "Настройки продукта → Модули ({url}).",
        "todo_cloud_module": "Включите инструмент «{module}» в настройках портала или проверьте, что он "
        "входит в ваш тариф Битрикс24.",
        "todo_scopes": "Выдайте приложению права {names}: переустановите его со страницы приложения в "
        "разделе «Приложения» и подтвердите права.",
        "network_title": "Сетевой доступ, нужный коробочному Битрикс24",
        "network_oauth": "Исходящий HTTPS с портала на oauth.bitrix.info (сервер авторизации): без него "
        "ни одно приложение не сможет вызывать REST API портала.",
        "network_queue": "События уходят с портала через облачную очередь событий Битрикс24, серверы "
        "которой затем вызывают приложение по адресу {events_url}: портал должен достигать очереди "
        "(адреса публикуются на https://dl.bitrix24.com/webhook/app-world.json).",
        "network_rest": "Входящий HTTPS на адрес /rest/ портала с серверов приложения.",
        "kind_box": "коробочный Битрикс24",
        "kind_cloud": "облачный Битрикс24",
        "notify_missing": "Приложение «{app}» не может использовать на этом портале некоторые функции: "
        "{items}. {todo}",
        "notify_available": "Хорошие новости: функции приложения {names} теперь доступны на портале и "
        "включились.",
        "notify_todo_box": "Установите обновления Битрикс24 и включите нужные модули "
        "(административная панель → Marketplace → Обновление платформы).",
        "notify_todo_cloud": "Проверьте, что нужные инструменты включены и входят в ваш тариф.",
        "hook_blocked": "[b24app] {label}: изменения на портале{since} не пришли через исходящий "
        "вебхук. Теперь приложение получает изменения через входящий вебхук (опрос изменений), "
        "поэтому ничего не потеряется. {advice}",
        "hook_since": " с {since}",
        "hook_back": "[b24app] События портала снова приходят через исходящий вебхук: очередь "
        "событий доступна. Приложение перестало опрашивать изменения.",
    },
}

#: Where a self-hosted portal's admin installs updates and manages modules (paths on the portal).
BOX_UPDATE_PATH = "/bitrix/admin/update_system.php"
BOX_MODULES_PATH = "/bitrix/admin/module_admin.php"


def language_of(code: str) -> str:
    return "ru" if (code or "").strip().lower()[:2] in RU_LANGUAGES else "en"


def texts(code: str) -> dict[str, str]:
    return TEXT[language_of(code)]
