"""bitrix"""
