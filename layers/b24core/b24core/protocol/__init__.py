"""The Bitrix24 wire protocol: PHP-bracket forms, the authorization server, REST and its errors."""
